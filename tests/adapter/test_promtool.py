"""`promtool check metrics` on what the adapter really serves."""

from __future__ import annotations

from support.apache import ApacheServer
from support.exposition import exposed_families
from support.httpd_adapter import ExporterFactory

from .test_families import EXPORTER_NAME_REMARKS, exporter_family_list, promtool_remarks


def test_promtool_finds_nothing_but_apache_exporters_own_names(
    exporters: ExporterFactory, apache: ApacheServer
) -> None:
    adapter = exporters.start("--scrape-uri", f"{apache.url}/server-status")
    text = adapter.metrics()
    remarks = promtool_remarks(text)
    assert remarks <= EXPORTER_NAME_REMARKS, remarks - EXPORTER_NAME_REMARKS
    # Families of our own are in the output, and promtool named none of them.
    inherited = {name for name, _, _ in exporter_family_list()}
    ours_alone = set(exposed_families(text)) - inherited
    assert {"apache_scrape_duration_seconds", "httpd_adapter_build_info",
            "process_resident_memory_bytes"} <= ours_alone  # fmt: skip
    assert not any(name in remark for remark in remarks for name in ours_alone)


def test_promtool_is_content_with_a_failed_scrape_too(exporters: ExporterFactory) -> None:
    adapter = exporters.start("--scrape-uri", "http://127.0.0.1:1/server-status")
    assert promtool_remarks(adapter.metrics()) == set()
