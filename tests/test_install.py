"""requirements/install.py: uv is given the indexes, wheels and constraints pip is set up with."""

import importlib.util

from conftest import REPO

spec = importlib.util.spec_from_file_location("install", REPO / "requirements" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def test_pip_settings_read_pip_config_list_the_environment_winning():
    # as pip prints them, sorted by key: the variables (:env:) first, yet they win; install.
    # wins over global.; an empty variable does not count; download. is not pip install's
    listed = (":env:.find-links='/other-wheels'\n"
              ":env:.index-url=''\n"
              "download.index-url='https://only-for-downloads/simple'\n"
              "global.extra-index-url='file:///mirror/simple file:///more/simple'\n"
              "global.find-links='/wheels'\n"
              "global.index-url='https://mirror/simple'\n"
              "global.no-index='true'\n"
              "install.no-index='false'\n")
    assert install.pip_settings(listed) == {
        "extra-index-url": "file:///mirror/simple file:///more/simple",
        "find-links": "/other-wheels", "index-url": "https://mirror/simple", "no-index": "false"}
    assert install.pip_settings("") == {}


def test_uv_gets_each_index_wheel_folder_constraint_and_certificate_of_pip():
    options, environment = install.uv_arguments({
        "index-url": "https://mirror/simple", "extra-index-url": "file:///a file:///b",
        "find-links": "/wheels", "constraint": "/etc/cap.txt", "no-index": "true",
        "cert": "/etc/ca.crt", "timeout": "180"})
    assert options == ["--index-strategy", "unsafe-best-match",
                       "--index-url", "https://mirror/simple", "--no-index",
                       "--extra-index-url", "file:///a", "--extra-index-url", "file:///b",
                       "--find-links", "/wheels", "--constraint", "/etc/cap.txt"]
    assert environment == {"SSL_CERT_FILE": "/etc/ca.crt"}
    assert install.uv_arguments({}) == (["--index-strategy", "unsafe-best-match"], {})
