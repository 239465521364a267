#!/bin/sh
# Builds tests/data/scan/rpm/rpmdb.sqlite: three tiny noarch packages made by rpmbuild from the specs
# below (one with an Epoch; one, libtiny, a subpackage of the source package tiny-suite), recorded by
# rpm itself in a fresh sqlite database (rpm --justdb: their files are installed nowhere).
# Needs Debian's `rpm` package (rpm 4.18 here). Usage: sh tests/data/scan/rpm/make-rpmdb.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

body() {  # the %install and %files of a package shipping one file named after it
    cat <<SPEC
%install
mkdir -p %{buildroot}/usr/share/dockyard-tests
echo $1 > %{buildroot}/usr/share/dockyard-tests/$1

%files $2
/usr/share/dockyard-tests/$1
SPEC
}

cat > "$work/hello-dockyard.spec" <<SPEC
Name: hello-dockyard
Version: 1.2.3
Release: 4
Summary: dockyard test package
License: MIT
Vendor: dockyard tests
BuildArch: noarch

%description
A package with one file, for dockyard's rpm database reader tests.

$(body hello-dockyard "")
SPEC

cat > "$work/epoch-tool.spec" <<SPEC
Name: epoch-tool
Epoch: 3
Version: 2.0
Release: 1.fc39
Summary: dockyard test package with an epoch
License: GPL-2.0-or-later AND MIT
Vendor: dockyard tests
BuildArch: noarch

%description
A package with an Epoch, for dockyard's rpm database reader tests.

$(body epoch-tool "")
SPEC

cat > "$work/tiny-suite.spec" <<SPEC
Name: tiny-suite
Version: 0.9
Release: 7
Summary: dockyard test source package
License: BSD-3-Clause
Vendor: dockyard tests
BuildArch: noarch

%description
A source package whose only binary package is libtiny.

%package -n libtiny
Summary: dockyard test subpackage

%description -n libtiny
A binary package named differently from its source package.

$(body libtiny "-n libtiny")
SPEC

for spec in "$work"/*.spec; do
    rpmbuild --quiet --define "_topdir $work/build" -bb "$spec"
done

mkdir -p "$work/db"
rpm --dbpath "$work/db" --define '_db_backend sqlite' --initdb
rpm --dbpath "$work/db" --define '_db_backend sqlite' -i --justdb --nodeps --ignorearch --ignoreos \
    "$work"/build/RPMS/noarch/*.rpm 2>/dev/null  # Debian's rpm warns that it is not Debian's installer
cp "$work/db/rpmdb.sqlite" "$here/rpmdb.sqlite"
rpm --dbpath "$work/db" --define '_db_backend sqlite' -qa \
    --queryformat '%{NAME} %{EPOCH} %{VERSION} %{RELEASE} %{ARCH} %{SOURCERPM} %{LICENSE} %{VENDOR}\n' | sort
