"""The short fault-injection run (ctest `jepsen_short`), as unittests:

  test_1_short_run        run --time 60 --nemesis all --seed 1 (3 voters,
                          2 edges, every workload): must finish with zero
                          anomalies (without a tvmw-edge binary: register
                          and bank only)
  test_2_unsafe_selftest  run --unsafe --scenario leader-partition: nodes
                          that acknowledge before commit, the leader cut off
                          from the majority while clients write to it, then
                          healed: the checkers MUST find an anomaly
  test_3_regressions      the scenarios that found bugs, with the seeds
                          that found them, on correct nodes: zero anomalies
                          (leader-partition seed 2 crashed a node that lost
                          leadership with reads waiting; leader-churn seed
                          13 got -1 "nothing done" for an applied write)

Needs root (network namespaces); skipped otherwise.  Each run prints its
summary table and keeps its history under tests/jepsen-like/runs/.
Environment: TVMW_CP_BIN, TVMW_EDGE_BIN (binaries), JEPSEN_SEED (default 1),
JEPSEN_TIME (default 60).
"""

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "run")


def run(*args):
    cmd = [sys.executable, RUN, "--quiet"] + list(args)
    print("\n$ " + " ".join(cmd[1:]), flush=True)
    return subprocess.run(cmd).returncode


@unittest.skipUnless(os.geteuid() == 0, "needs root (network namespaces)")
class ShortRun(unittest.TestCase):
    seed = os.environ.get("JEPSEN_SEED", "1")

    def test_1_short_run(self):
        edge = os.environ.get("TVMW_EDGE_BIN")
        rc = run("--time", os.environ.get("JEPSEN_TIME", "60"), "--nemesis", "all",
                 "--seed", self.seed, "--workload",
                 "all" if edge and os.access(edge, os.X_OK) else "register,bank")
        self.assertEqual(rc, 0, "short run: exit %d (1 anomaly, 2 infrastructure, "
                                "3 checker unknown)" % rc)

    def test_2_unsafe_selftest(self):
        rc = run("--time", "20", "--nemesis", "none", "--seed", self.seed, "--unsafe",
                 "--scenario", "leader-partition", "--expect-anomaly",
                 "--workload", "register,bank")
        self.assertEqual(rc, 0, "unsafe self-test: exit %d (1 = no anomaly found in "
                                "--unsafe mode, 2 infrastructure)" % rc)

    def test_3_regressions(self):
        for scenario, seed in (("leader-partition", "2"), ("leader-churn", "13")):
            rc = run("--time", "20", "--nemesis", "none", "--seed", seed, "--scenario", scenario,
                     "--workload", "register,bank")
            self.assertEqual(rc, 0, "regression %s seed %s: exit %d" % (scenario, seed, rc))


if __name__ == "__main__":
    unittest.main(verbosity=2)
