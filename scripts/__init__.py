"""A package (not just a folder) so the fetch scripts share private_apt.py, also when run as files."""
