"""``campwatch coregister`` through the real entry point."""

from __future__ import annotations

import json

from campwatch.cli.main import main


def test_coregister_json_on_sample_pair(samples, capsys):
    code = main(["coregister", str(samples / "rennes" / "imgs_1"), str(samples / "rennes" / "imgs_2"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {"dx_px", "dy_px", "reliability", "applied"} <= set(out)
    assert abs(out["dx_px"]) < 1 and abs(out["dy_px"]) < 1 and out["reliability"] > 0.2
    assert out["band"] == "red" and out["before_date"] == "2015-08-21"


def test_coregister_text_with_aoi_and_no_overlap(samples, capsys):
    code = main(["coregister", str(samples / "rennes" / "imgs_1"), str(samples / "rennes" / "imgs_2"),
                 "--aoi", "aois/samples/sample-rennes.geojson"])
    text = capsys.readouterr().out
    assert code == 0 and "dx =" in text and "reliability" in text
    code = main(["coregister", str(samples / "rennes" / "imgs_1"), str(samples / "paris" / "imgs_2")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "do not overlap" in err
