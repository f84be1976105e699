import campwatch


def test_every_public_name_resolves():
    for name in campwatch.__all__:
        assert getattr(campwatch, name) is not None, name


def test_errors_inherit_builtins():
    assert issubclass(campwatch.InvalidAOIError, ValueError)
    assert issubclass(campwatch.TileReadError, OSError)
    assert issubclass(campwatch.OutputExistsError, FileExistsError)
    for name in ("InvalidAOIError", "GridMismatchError", "NoOverlapError", "TileReadError", "MissingBandsError"):
        assert issubclass(getattr(campwatch, name), campwatch.CampwatchError)
    assert issubclass(campwatch.MisregistrationWarning, campwatch.CampwatchWarning)


def test_versions_report():
    v = campwatch.versions()
    assert v["campwatch"] == campwatch.__version__ and v["rasterio"] != "not installed"
