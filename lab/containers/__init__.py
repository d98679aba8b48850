"""`make test-containers`: the real images and pods, under podman.

Builds the three images from their Dockerfiles (on stand-ins for the
official base images, made from Debian packages), plays the pods of k8s/
with `podman kube play`, and checks end to end what the workshop guide says
each pattern does. Needs root (rootful podman, debootstrap), podman, runc,
debootstrap, git and kubectl; runs from the venv (PyYAML).

    .venv/bin/python -m lab.containers [--keep] [--pattern sidecar] ...
"""
