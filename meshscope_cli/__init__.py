"""The `meshscope` command line."""
