#!/usr/bin/env bash
# H2O needs a Java runtime (8-17). Install OpenJDK 17 from Debian's packages when none is found.
set -euo pipefail
if command -v java >/dev/null 2>&1; then
  java -version 2>&1 | head -n 1
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "Java not found: installing openjdk-17-jre-headless from Debian's packages"
  apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  java -version 2>&1 | head -n 1
else
  echo "error: Java not found. H2O AutoML needs a Java 17 runtime:" >&2
  echo "  sudo apt-get install openjdk-17-jre-headless   (or set JAVA_HOME)" >&2
  exit 1
fi
