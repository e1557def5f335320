#!/bin/sh
# Writes requirements/cuda.txt: every package of the `cuda` image, pinned, as pip resolves
# pyproject.toml's dependencies plus the [vllm] extra for Linux x86_64 and Python 3.12 (the
# Python of the CUDA base image). Needs the package index, no GPU. The test suite re-resolves
# the file the same way, so a pin that does not exist or conflicts fails CI.
set -eu
cd "$(dirname "$0")/.."
python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['vllm']))" > /tmp/cuda-deps.txt
PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= python3 -m pip install --dry-run --ignore-installed --quiet \
    --python-version 3.12 --only-binary=:all: --target /tmp/cuda-lock-target \
    --report /tmp/cuda-report.json -r /tmp/cuda-deps.txt
{
    echo "# The cuda image's packages (Python 3.12, Linux x86_64), written by requirements/lock-cuda.sh."
    python3 -c "import json; r = json.load(open('/tmp/cuda-report.json')); \
print('\n'.join(sorted((i['metadata']['name'] + '==' + i['metadata']['version'] for i in r['install']), key=str.lower)))"
} > requirements/cuda.txt
