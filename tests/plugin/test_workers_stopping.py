"""Under xdist the workers are stopped while the report is written (plugin/reporting.py
`workers_stopping`): xdist's teardown of its nodes runs in a thread during the write and is over
when the write is; without xdist nothing is started. The -n 2 runs of tests/plugin/ and
tests/study/ show the whole run still ends cleanly, its results byte-identical."""
import threading
from types import SimpleNamespace

from plugin.reporting import Reporting, workers_stopping


class Nodes:
    def __init__(self):
        self.started, self.release, self.stopped = threading.Event(), threading.Event(), threading.Event()

    def teardown_nodes(self):
        self.started.set()
        self.release.wait(10)
        self.stopped.set()


def config_with(dsession):
    return SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=lambda name: dsession if name == "dsession" else None))


def test_the_workers_are_stopped_while_the_report_is_written():
    nodes = Nodes()
    with workers_stopping(config_with(SimpleNamespace(nodemanager=nodes))):
        assert nodes.started.wait(10), "the workers' teardown did not start before the report"
        assert not nodes.stopped.is_set()
        threading.Timer(0.1, nodes.release.set).start()
    assert nodes.stopped.is_set(), "the report's step ended before the workers were stopped"


def test_without_xdist_nothing_is_stopped():
    with workers_stopping(config_with(None)):
        pass
    with workers_stopping(config_with(SimpleNamespace())):       # a dsession without nodes yet
        pass


def test_the_report_is_written_before_xdists_own_sessionfinish():
    assert Reporting.pytest_sessionfinish.pytest_impl["tryfirst"] is True
