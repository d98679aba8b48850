"""The workshop's tooling: what `make deploy-*`, `verify-*`, `undeploy-*`,
the cluster checks before them and `make demo` run.

`preflight`, `kube`, `patterns`, `verify` and `cluster` use the standard
library only, so the cluster targets run with any Python 3.11 (no venv);
`demo` runs the services from the venv, and so does `containers` (`make
test-containers`: the images and pods under podman).
"""
