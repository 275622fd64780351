"""The Lark grammar of the .circ language, shipped as package data."""
