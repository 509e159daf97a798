#!/bin/sh
# ctest entry of the jepsen-like suite: the short run (60 s, all nemeses,
# seed 1) and the --unsafe self-test, about 2 minutes.  Exit 77 (ctest
# SKIP_RETURN_CODE) when not root; non-zero on an anomaly or an
# infrastructure failure.
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the jepsen-like suite needs root (network namespaces, nftables)"
    exit 77
fi
cd "$here" && exec python3 -m unittest -v test_suite_short
