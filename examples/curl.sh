#!/usr/bin/env bash
# MPCSFaaS over the REST shim with curl. Python (with dill) serializes the function and the
# arguments and reads the results: payloads are base64 of dill pickles.
#
#   examples/curl.sh [BASE_URL]      # default: $FAAS_REST_URL or http://127.0.0.1:8000
#
# The Python is the clone's venv (.venv/bin/python, made by `make install`), or $PYTHON.
set -euo pipefail

BASE_URL=${1:-${FAAS_REST_URL:-http://127.0.0.1:8000}}
PYTHON=${PYTHON:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/python}
if ! "$PYTHON" -c 'import dill' 2>/dev/null; then
  echo "curl.sh: $PYTHON cannot import dill: run \`make install\` first, or set PYTHON" >&2
  exit 2
fi

post() { # PATH JSON -> the reply body
  curl --silent --show-error --fail-with-body -X POST "$BASE_URL$1" \
    -H 'Content-Type: application/json' -d "$2"
}
field() { # NAME: read one field of the JSON document on stdin
  "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
args() { # PYTHON_EXPR: base64 of dill.dumps(((args), {kwargs}))
  "$PYTHON" -c 'import base64, dill, sys; print(base64.b64encode(dill.dumps(eval(sys.argv[1]))).decode())' "$1"
}
value() { # the result of a /result body on stdin, unpickled
  "$PYTHON" -c 'import base64, dill, json, sys
body = json.load(sys.stdin)
print(body["status"], dill.loads(base64.b64decode(body["result"])))'
}

FUNCTION=$("$PYTHON" -c '
import base64, dill

def square(x):
    return x * x

print(base64.b64encode(dill.dumps(square)).decode())')

function_id=$(post /register_function "{\"name\": \"square\", \"payload\": \"$FUNCTION\"}" | field function_id)
echo "registered square as $function_id"

task_id=$(post /execute_function \
  "{\"function_id\": \"$function_id\", \"payload\": \"$(args '((9,), {})')\"}" | field task_id)
echo "task $task_id: $(curl --silent --show-error --fail "$BASE_URL/status/$task_id" | field status)"

# A long poll: returns as soon as the task ends (or after 30 s).
echo "result: $(curl --silent --show-error --fail "$BASE_URL/result/$task_id?wait=30" | value)"

batch=$(post /execute_batch "{\"function_id\": \"$function_id\", \"payloads\": [\"$(args '((2,), {})')\", \"$(args '((3,), {})')\"]}")
for id in $(echo "$batch" | "$PYTHON" -c 'import json, sys; print(" ".join(json.load(sys.stdin)["task_ids"]))'); do
  echo "batch: $(curl --silent --show-error --fail "$BASE_URL/result/$id?wait=30" | value)"
done

echo "unknown task: HTTP $(curl --silent --output /dev/null --write-out '%{http_code}' "$BASE_URL/status/no-such-task")"
curl --silent --show-error --fail "$BASE_URL/workers" | "$PYTHON" -c 'import json, sys
body = json.load(sys.stdin)
print("workers: %d (%s mode), %d queued" % (len(body["workers"]), body["mode"], body["queued"]))'
