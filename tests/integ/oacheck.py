#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks JSON documents against a schema of an OpenAPI 3.1 description.

  oacheck.py SPEC NAME [FILE]          one JSON document (FILE or stdin)
                                       against components/schemas/NAME
  oacheck.py --lines SPEC NAME [FILE]  one JSON document per non-empty line
  oacheck.py --examples SPEC           every example in SPEC against its
                                       schema (the linter checks only some)

Exit status: 0 when everything matches, 1 on a mismatch (every problem is
printed on stderr, one a line, with its place in the document), 2 on a
usage error or a SPEC or document that cannot be read.

Needs python3-jsonschema (4.10 or later: Draft 2020-12, the dialect of
OpenAPI 3.1 schemas) and python3-yaml. References ($ref) are resolved
inside SPEC: the schema checked is {"$ref": "#/components/schemas/NAME"}
with SPEC's components beside it, so every "#/components/..." pointer
means what it means in SPEC.
"""

import decimal
import json
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:
    sys.stderr.write("oacheck: %s (install python3-jsonschema and "
                     "python3-yaml)\n" % e)
    sys.exit(2)

PROG = "oacheck"


def die(msg):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.exit(2)


def load_spec(path):
    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        die("%s: %s" % (path, e))
    if not isinstance(spec, dict) or "components" not in spec:
        die("%s: not an OpenAPI description with components" % path)
    version = str(spec.get("openapi", ""))
    if not version.startswith("3.1"):
        # 3.0 schemas are not JSON Schema (nullable, exclusiveMinimum as a
        # boolean): checking them as 2020-12 would be quietly wrong.
        die("%s: openapi %s; only 3.1 is supported" % (path, version))
    return spec


def validator_for(spec, pointer):
    """A validator for the schema at the JSON pointer POINTER of SPEC."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": pointer,
        "components": spec["components"],
    }
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=jsonschema.FormatChecker())


def where(path):
    """A JSON path such as $.sessions[0].state for an error's place."""
    s = "$"
    for p in path:
        s += "[%d]" % p if isinstance(p, int) else ".%s" % p
    return s


def problems(validator, doc):
    """Every mismatch of DOC, as lines of text, in document order."""
    errs = sorted(validator.iter_errors(doc),
                  key=lambda e: [str(p) for p in e.absolute_path])
    out = []
    for e in errs:
        # A oneOf or anyOf failure says little by itself: show what each
        # branch disliked too.
        out.append("%s: %s" % (where(e.absolute_path), e.message))
        for sub in e.context or ():
            out.append("  %s: %s" % (where(sub.absolute_path), sub.message))
    return out


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ValueError("duplicate keys %s" % ", ".join(dups))
    return dict(pairs)


def no_constant(name):
    raise ValueError("%s is not JSON" % name)


def parse(text):
    """JSON as strictly as the schemas mean it.

    A number written with a fraction or an exponent is parsed as a
    Decimal, which JSON Schema's "integer" does not accept (a float such
    as 0.0 it would): a count or a rate in bytes that the gateway writes
    as 0.0 is not written the way docs/api.md shows it. Duplicate keys
    and NaN or Infinity are refused.
    """
    return json.loads(text, parse_float=decimal.Decimal,
                      parse_constant=no_constant,
                      object_pairs_hook=no_duplicates)


def check_one(validator, label, text):
    try:
        doc = parse(text)
    except ValueError as e:
        sys.stderr.write("%s: %s: not JSON: %s\n" % (PROG, label, e))
        snippet = text[:200].replace("\n", "\\n")
        sys.stderr.write("%s: %s: starts with: %s\n" % (PROG, label, snippet))
        return False
    bad = problems(validator, doc)
    for line in bad:
        sys.stderr.write("%s: %s: %s\n" % (PROG, label, line))
    return not bad


def media_examples(spec):
    """(place, schema, example) for every media type with an example."""
    found = []

    def walk(node, place):
        if isinstance(node, dict):
            if "schema" in node and "example" in node and \
                    isinstance(node["schema"], dict) and \
                    "$ref" in node["schema"]:
                found.append((place, node["schema"]["$ref"],
                              node["example"]))
            for k, v in node.items():
                walk(v, place + "/" + str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, place + "/" + str(i))

    walk(spec.get("paths", {}), "#/paths")
    walk(spec["components"].get("responses", {}), "#/components/responses")
    return found


def check_examples(spec):
    good = True
    n = 0
    for name, schema in spec["components"].get("schemas", {}).items():
        if isinstance(schema, dict) and "example" in schema:
            n += 1
            v = validator_for(spec, "#/components/schemas/" + name)
            for line in problems(v, schema["example"]):
                good = False
                sys.stderr.write("%s: example of %s: %s\n" %
                                 (PROG, name, line))
    for place, ref, example in media_examples(spec):
        n += 1
        for line in problems(validator_for(spec, ref), example):
            good = False
            sys.stderr.write("%s: example at %s: %s\n" % (PROG, place, line))
    if n == 0:
        sys.stderr.write("%s: no examples found\n" % PROG)
        return False
    print("%d examples checked" % n)
    return good


def main(argv):
    lines = False
    if argv and argv[0] == "--examples":
        if len(argv) != 2:
            die("usage: oacheck.py --examples SPEC")
        return 0 if check_examples(load_spec(argv[1])) else 1
    if argv and argv[0] == "--lines":
        lines = True
        argv = argv[1:]
    if len(argv) not in (2, 3):
        die("usage: oacheck.py [--lines] SPEC NAME [FILE]")
    spec = load_spec(argv[0])
    name = argv[1]
    if name not in spec["components"].get("schemas", {}):
        die("%s: no schema %s in components/schemas" % (argv[0], name))
    validator = validator_for(spec, "#/components/schemas/" + name)
    label = argv[2] if len(argv) == 3 else "stdin"
    try:
        if len(argv) == 3:
            with open(argv[2], encoding="utf-8") as f:
                text = f.read()
        else:
            text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as e:
        die("%s: %s" % (label, e))
    if not lines:
        return 0 if check_one(validator, "%s as %s" % (label, name),
                              text) else 1
    good = True
    n = 0
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip():
            n += 1
            good &= check_one(validator, "%s line %d as %s" %
                              (label, i, name), line)
    if n == 0:
        sys.stderr.write("%s: %s: no documents\n" % (PROG, label))
        return 1
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
