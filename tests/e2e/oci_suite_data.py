"""testdata.go of the OCI distribution-spec conformance suite, runner generation: media types, the random
content generators and the data sets they fill.

Source: github.com/opencontainers/distribution-spec, ``conformance/testdata.go`` (commits 4fc4ecbe / 216c04cd).
Used by ``test_oci_conformance_next.py`` (the runner) and ``test_oci_conformance_numbered.py`` (digests and the
Go JSON encodings).
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

# --------------------------------------------------------------------------------------------------------------------
# testdata.go: media types and the random content generators
# --------------------------------------------------------------------------------------------------------------------

MT_EXAMPLE_CONF1 = "application/vnd.example.oci.conformance.v1"
MT_EXAMPLE_CONF2 = "application/vnd.example.oci.conformance.v2"
MT_OCTET_STREAM = "application/octet-stream"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_IMAGE = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_PRE = "application/vnd.oci.image.layer.v1."
MT_OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MT_OCI_LAYER_ND_GZ = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MT_OCI_EMPTY_JSON = "application/vnd.oci.empty.v1+json"

CHUNK_MIN = 1024  # config.go chunkMin
COMP_UNCOMP = "uncompressed"
COMP_GZIP = "gzip"
AMD64 = {"architecture": "amd64", "os": "linux"}
ARM64 = {"architecture": "arm64", "os": "linux"}
BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def digest_of(data: bytes, algo: str = "sha256") -> str:
    return f"{algo}:{hashlib.new(algo, data).hexdigest()}"


def algo_of(dig: str) -> str:
    return dig.split(":", 1)[0]


EMPTY_DIGEST = digest_of(b"")  # api.go emptyDigest (always sha256)


def rand_text() -> str:
    """Go's crypto/rand.Text(): 26 characters of base32."""
    return "".join(random.SystemRandom().choice(BASE32) for _ in range(26))


def go_json(obj: Any) -> bytes:
    """encoding/json.Marshal: compact; callers build dicts in Go field order and sort map keys."""
    return json.dumps(obj, separators=(",", ":")).encode()


def go_json_indent(obj: Any) -> bytes:
    """encoding/json.MarshalIndent(v, "", "\\t")."""
    return json.dumps(obj, indent="\t").encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Desc:
    """image-spec v1 Descriptor, marshalled in field order with its omitempty rules."""

    media_type: str
    digest: str
    size: int
    urls: list[str] | None = None
    annotations: dict[str, str] | None = None
    data: bytes | None = None
    platform: dict[str, str] | None = None
    artifact_type: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.urls:
            out["urls"] = self.urls
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.data:
            out["data"] = b64(self.data)
        if self.platform is not None:
            out["platform"] = self.platform
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


class GenOpts(TypedDict, total=False):
    """testdata.go genOptS: only the keys a caller set, later ones winning like Go's option funcs."""

    algo: str
    annotations: dict[str, str]
    annotation_uniq: bool
    artifact_type: str
    blob_size: int
    comp: str
    config_bytes: bytes
    config_media_type: str
    descriptor_media_type: str
    extra_field: bool
    layer_bytes: bytes
    layer_count: int
    layer_media_type: str
    platform: dict[str, str]
    platforms: list[dict[str, str] | None]
    set_data: bool
    subject: Desc
    tag: str


def with_extra_field(obj: dict[str, Any]) -> dict[str, Any]:
    """genAddJSONFields: the struct embedded, plus a field `org.<random>` holding random text."""
    return {**obj, f"org.{rand_text()}": rand_text()}


@dataclass
class TestData:
    """testdata.go testData."""

    __test__ = False  # not a pytest class

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    tag_pushed: dict[str, bool] = field(default_factory=dict)
    desc: dict[str, Desc] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    man_order: list[str] = field(default_factory=list)
    referrers: dict[str, list[Desc]] = field(default_factory=dict)
    pull_flags: dict[str, set[str]] = field(default_factory=dict)
    push_flags: dict[str, set[str]] = field(default_factory=dict)

    def add_blob(self, b: bytes, opts: GenOpts) -> str:
        algo = opts.get("algo", "sha256")
        dig = digest_of(b, algo)
        self.blobs[dig] = b
        self.desc[dig] = Desc(opts.get("descriptor_media_type", MT_OCTET_STREAM), dig, len(b),
                              data=b if opts.get("set_data") else None)
        return dig

    def gen_blob(self, opts: GenOpts) -> tuple[str, bytes]:
        b = os.urandom(opts.get("blob_size", 2048))
        return self.add_blob(b, opts), b

    def gen_layer(self, file_num: int, opts: GenOpts) -> tuple[str, str, bytes]:
        """genLayer: a tar holding one text file, gzipped unless asked otherwise.

        Go writes the tar into the compressed buffer only, so its "uncompressed digest" is always the digest of
        zero bytes; the configs' diff_ids carry that value, and so do these.
        """
        algo = opts.get("algo", "sha256")
        comp = opts.get("comp", COMP_GZIP)
        lucky = random.SystemRandom().randrange(2**63 - 1)
        content = (f"Conformance test file contents for file number {file_num}.\n"
                   f"Todays lucky number is {lucky}\n").encode()
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            info = tarfile.TarInfo(f"./conformance-{file_num}.txt")
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
        body = gzip.compress(raw.getvalue(), mtime=0) if comp == COMP_GZIP else raw.getvalue()
        mt = MT_OCI_LAYER_GZ if comp == COMP_GZIP else MT_OCI_LAYER
        dig_comp = digest_of(body, algo)
        dig_uncomp = digest_of(b"", algo)
        self.blobs[dig_comp] = body
        self.desc[dig_comp] = Desc(mt, dig_comp, len(body), data=body if opts.get("set_data") else None)
        self.desc[dig_uncomp] = Desc(MT_OCI_LAYER, dig_uncomp, 0)
        return dig_comp, dig_uncomp, body

    def gen_config(self, platform: dict[str, str], layers: list[str], opts: GenOpts) -> tuple[str, bytes]:
        algo = opts.get("algo", "sha256")
        config: dict[str, Any] = {
            "author": "OCI Conformance Test",
            "architecture": platform["architecture"],
            "os": platform["os"],
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": layers},
        }
        body = go_json(with_extra_field(config) if opts.get("extra_field") else config)
        dig = digest_of(body, algo)
        self.blobs[dig] = body
        self.desc[dig] = Desc(opts.get("config_media_type", MT_OCI_CONFIG), dig, len(body),
                              data=body if opts.get("set_data") else None)
        return dig, body

    def _annotations(self, opts: GenOpts) -> dict[str, str] | None:
        annotations = opts.get("annotations")
        if opts.get("annotation_uniq"):
            annotations = dict(annotations or {})
            annotations[f"org.example.{rand_text()}"] = rand_text()
        return annotations

    def gen_manifest(self, conf: Desc, layers: list[Desc], opts: GenOpts) -> tuple[str, bytes]:
        algo = opts.get("algo", "sha256")
        subject = opts.get("subject")
        artifact_type = opts.get("artifact_type", "")
        annotations = self._annotations(opts)
        m: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_OCI_IMAGE}
        if artifact_type:
            m["artifactType"] = artifact_type
        m["config"] = conf.to_json()
        m["layers"] = [layer.to_json() for layer in layers]
        if subject is not None:
            m["subject"] = subject.to_json()
        if annotations:
            m["annotations"] = dict(sorted(annotations.items()))
        body = go_json(with_extra_field(m) if opts.get("extra_field") else m)
        dig = digest_of(body, algo)
        self.manifests[dig] = body
        self.man_order.append(dig)
        self.desc[dig] = Desc(MT_OCI_IMAGE, dig, len(body), data=body if opts.get("set_data") else None)
        if subject is not None:
            self.referrers.setdefault(subject.digest, []).append(
                Desc(MT_OCI_IMAGE, dig, len(body), annotations=annotations,
                     artifact_type=artifact_type or conf.media_type))
        if opts.get("tag"):
            self.tags[opts["tag"]] = dig
        return dig, body

    def gen_manifest_full(self, opts: GenOpts) -> str:
        o: GenOpts = {"layer_count": 2, "platform": AMD64, **opts}
        layer_mt = o.get("layer_media_type", "")
        dig_c_list: list[str] = []
        dig_uc_list: list[str] = []
        for n in range(o["layer_count"]):
            if layer_mt == "" or layer_mt.startswith(MT_OCI_LAYER_PRE):
                dig_c, dig_uc, _ = self.gen_layer(n, opts)
                dig_c_list.append(dig_c)
                dig_uc_list.append(dig_uc)
            else:
                layer_opts: GenOpts = {"descriptor_media_type": layer_mt, **opts}
                if "layer_bytes" in o:
                    dig = self.add_blob(o["layer_bytes"], layer_opts)
                else:
                    dig, _ = self.gen_blob(layer_opts)
                dig_c_list.append(dig)
                dig_uc_list.append(dig)
        config_mt = o.get("config_media_type", "")
        if config_mt in ("", MT_OCI_CONFIG):
            c_dig, _ = self.gen_config(o["platform"], dig_uc_list, opts)
        else:
            c_dig = self.add_blob(o.get("config_bytes", b""), {"descriptor_media_type": config_mt, **opts})
        layers = [dataclasses.replace(self.desc[d]) for d in dig_c_list]
        m_dig, _ = self.gen_manifest(dataclasses.replace(self.desc[c_dig]), layers, opts)
        return m_dig

    def gen_index(self, platforms: Sequence[dict[str, str] | None], manifests: Sequence[str],
                  opts: GenOpts) -> tuple[str, bytes]:
        algo = opts.get("algo", "sha256")
        subject = opts.get("subject")
        artifact_type = opts.get("artifact_type", "")
        entries = [dataclasses.replace(self.desc[d], platform=platforms[i]) for i, d in enumerate(manifests)]
        annotations = self._annotations(opts)
        ind: dict[str, Any] = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX}
        if artifact_type:
            ind["artifactType"] = artifact_type
        ind["manifests"] = [e.to_json() for e in entries]
        if subject is not None:
            ind["subject"] = subject.to_json()
        if annotations:
            ind["annotations"] = dict(sorted(annotations.items()))
        body = go_json(with_extra_field(ind) if opts.get("extra_field") else ind)
        dig = digest_of(body, algo)
        self.manifests[dig] = body
        self.man_order.append(dig)
        self.desc[dig] = Desc(MT_OCI_INDEX, dig, len(body), data=body if opts.get("set_data") else None)
        if subject is not None:
            self.referrers.setdefault(subject.digest, []).append(
                Desc(MT_OCI_INDEX, dig, len(body), annotations=annotations, artifact_type=artifact_type))
        if opts.get("tag"):
            self.tags[opts["tag"]] = dig
        return dig, body

    def gen_index_full(self, opts: GenOpts) -> str:
        platforms: list[dict[str, str] | None] = list(opts.get("platforms", [AMD64, ARM64]))
        images = []
        for p in platforms:
            assert p is not None
            images.append(self.gen_manifest_full({"platform": p, **opts}))
        dig, _ = self.gen_index(platforms, images, opts)
        return dig
