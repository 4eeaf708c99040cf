"""MPCSFaaS client: the generated ``faas.v1`` stubs and a small SDK on top of them."""
