#!/usr/bin/env bash
# Build delta-storage-s3-dynamodb-3.3.2.jar from the vendored, unmodified upstream sources (README.md).
#
#   bash infra/delta_logstore/build.sh OUT_JAR
#
# The classpath is what the log store compiles against and what Spark already carries at run time:
# delta-storage + the AWS SDK v1 bundle from $JARS_DIR (default: the repo's .jars, fetched by Maven),
# and hadoop-client-api, slf4j-api, guava and commons-io from pyspark's own jars. The jar is packed
# with sorted entries and fixed timestamps, so the same sources and JDK give the same bytes; the
# output is replaced atomically, so rerunning it (or interrupting it) never leaves a half-written jar.
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 OUT_JAR" >&2
  exit 2
fi
OUT_JAR=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HERE/../.." && pwd)
JARS_DIR=${JARS_DIR:-$REPO_ROOT/.jars}
PYTHON=${PYTHON:-$REPO_ROOT/.venv/bin/python}

need() { [ -f "$1" ] || { echo "build.sh: missing $1 (run \`make setup\` first)" >&2; exit 1; }; }
one() {  # the single jar matching a glob; fails loudly on none or several
  local matches=("$@")
  [ "${#matches[@]}" -eq 1 ] && [ -f "${matches[0]}" ] || { echo "build.sh: expected one jar, got: $*" >&2; exit 1; }
  echo "${matches[0]}"
}

PYSPARK_JARS=$("$PYTHON" -c 'import pyspark,os;print(os.path.dirname(pyspark.__file__))')/jars
CLASSPATH_JARS=(
  "$JARS_DIR/delta-storage-3.3.2.jar"
  "$JARS_DIR/aws-java-sdk-bundle-1.12.262.jar"
  "$(one "$PYSPARK_JARS"/hadoop-client-api-*.jar)"
  "$(one "$PYSPARK_JARS"/slf4j-api-*.jar)"
  "$(one "$PYSPARK_JARS"/guava-*.jar)"
  "$(one "$PYSPARK_JARS"/commons-io-*.jar)"
)
for jar in "${CLASSPATH_JARS[@]}"; do need "$jar"; done
CP=$(IFS=:; echo "${CLASSPATH_JARS[*]}")

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/classes/META-INF"
# --release 8: Glue and local Spark run Java 17, but Delta publishes this artifact for Java 8.
find "$HERE/src/main/java" -name '*.java' | LC_ALL=C sort > "$WORK/sources.txt"
javac --release 8 -nowarn -XDsuppressNotes -encoding UTF-8 -cp "$CP" -d "$WORK/classes" @"$WORK/sources.txt"
cp "$HERE/LICENSE" "$HERE/NOTICE" "$WORK/classes/META-INF/"
printf 'Manifest-Version: 1.0\r\nImplementation-Title: delta-storage-s3-dynamodb\r\nImplementation-Version: 3.3.2\r\n\r\n' \
  > "$WORK/classes/META-INF/MANIFEST.MF"

# Pack with Python's zipfile rather than `jar`: JDK 17's jar has no --date, and entry order and
# timestamps would otherwise change the bytes on every build.
mkdir -p "$(dirname "$OUT_JAR")"
"$PYTHON" - "$WORK/classes" "$OUT_JAR.tmp" <<'EOF'
import os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
names = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
names.sort(key=lambda n: n != "META-INF/MANIFEST.MF")  # the manifest first, as jar readers expect
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as jar:
    for name in names:
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
        with open(os.path.join(root, name), "rb") as f:
            jar.writestr(info, f.read())
EOF
mv -f "$OUT_JAR.tmp" "$OUT_JAR"
echo "built $OUT_JAR"
