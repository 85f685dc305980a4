#!/usr/bin/env python3
"""Parses every file of a generated tree with the real parser for its kind.

Usage: check_tree.py ROOT
Python files are compiled, JSON, YAML (all documents), TOML and XML files
parsed. Prints one line per file that does not parse ("path: error") and
a final line "checked N files"; exits 1 when any file failed.
"""
import json
import os
import sys
import tomllib
import xml.etree.ElementTree as ET

import yaml

root = sys.argv[1]
failed, checked = 0, 0
for dirpath, _, names in os.walk(root):
    for name in sorted(names):
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, root)
        text = open(path, encoding="utf-8").read()
        try:
            if name.endswith(".py"):
                compile(text, rel, "exec")
            elif name.endswith(".json"):
                json.loads(text)
            elif name.endswith((".yml", ".yaml")):
                list(yaml.safe_load_all(text))
            elif name.endswith(".toml"):
                tomllib.loads(text)
            elif name.endswith(".xml"):
                ET.fromstring(text)
            else:
                continue
            checked += 1
        except Exception as e:  # noqa: BLE001 - report every kind of parse error
            failed += 1
            print(f"{rel}: {e}")
print(f"checked {checked} files")
sys.exit(1 if failed else 0)
