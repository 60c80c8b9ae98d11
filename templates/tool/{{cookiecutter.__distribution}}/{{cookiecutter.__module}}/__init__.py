"""The {{ cookiecutter.__tool }} tool, governed by Cairnloop."""
