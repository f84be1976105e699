from __future__ import annotations

import json

import pytest

from campwatch.cli.main import main


def test_compare_then_evaluate(tmp_path, capsys, samples):
    out = tmp_path / "paris"
    rc = main(["compare", str(samples / "paris/imgs_1"), str(samples / "paris/imgs_2"), "-o", str(out)])
    assert rc == 0
    assert (out / "summary.json").is_file() and (out / "quicklook.png").is_file()
    rc = main(["compare", str(samples / "paris/imgs_1"), str(samples / "paris/imgs_2"), "-o", str(out)])
    assert rc == 2 and "exists already" in capsys.readouterr().err
    rc = main(["evaluate", "--json", str(out / "change_mask.tif"), str(samples / "paris/cm/paris-cm.tif")])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert 0 <= d["f1"] <= 1 and d["tp"] + d["fn"] > 0


def test_compare_fixed_threshold_and_bad_threshold(tmp_path, samples):
    args = ["compare", str(samples / "rennes/imgs_1"), str(samples / "rennes/imgs_2"), "--method", "irmad",
            "--threshold", "8", "--no-coregister", "-o", str(tmp_path / "r")]
    assert main(args) == 0
    s = json.loads((tmp_path / "r/summary.json").read_text())
    assert s["threshold"]["value"] == 8.0 and s["coregistration"] is None and s["method"] == "irmad"
    assert main([*args[:-2], "--threshold", "bogus", "-o", str(tmp_path / "x")]) == 2


@pytest.mark.shared
def test_bench_oscd_shared(shared_data, capsys):
    rc = main(["bench", "oscd", "--json", "--no-baseline", str(shared_data / "oscd")])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert len(d["cities"]) == 7
    assert d["pooled"]["default"]["f1"] >= 0.32  # 0.326 with the region peak (issue 18); 0.289 before


def test_evaluate_refuses_a_label_with_none_of_the_label_values(samples, tmp_path):
    from campwatch.cli.main import main

    assert main(["compare", str(samples / "rennes" / "imgs_1"), str(samples / "rennes" / "imgs_2"),
                 "--output", str(tmp_path / "c"), "--no-structures"]) == 0
    code = main(["evaluate", str(tmp_path / "c" / "change_mask.tif"), str(samples / "rennes" / "cm" / "cm.png")])
    assert code == 2
