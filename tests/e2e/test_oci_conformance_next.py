"""A Python port of the OCI distribution-spec conformance suite, runner generation, run against `dockyard serve`.

Source: github.com/opencontainers/distribution-spec, folder ``conformance/``: ``run.go``, ``api.go``, ``config.go``,
``state.go``, ``testdata.go``, ``errors.go``, ``results.go``, driven by ``legacy_test.go`` → ``mainRun``; read at
commits 4fc4ecbe / 216c04cd. It generates random images, indexes, artifacts and blobs (``oci_suite_data.py``),
pushes them with every upload flavour, then lists, heads, pulls, queries referrers and deletes them (the calls are
in ``oci_suite_api.py``, which also describes how requests and authentication are made). ``TestAll`` is split into
one pytest test per ``ChildRun`` group; each pytest test fails when a leaf check of its group ends in a status other
than Pass, listing the leaf, the status the Go suite would record (Skip for ``errRegUnsupported``, FAIL, Error) and
the request that went wrong. The numbered Ginkgo files of the same suite are ported in
``test_oci_conformance_numbered.py``.

The suite's optional features are switched on where dockyard claims them (see ``SuiteConfig``): anonymous
(automatic) cross-mount, tag/manifest/blob deletes and their atomicity, the referrers API, sha512, ``?tag=``
multi-tag pushes (``apis.manifests.tagParam``), upload cancel and required ``Docker-Content-Digest`` headers (the
last three are only on by default with ``OCI_VERSION=dev``). ``sparse`` stays off: dockyard rejects manifests whose
blobs are missing, by design.

Set ``DOCKYARD_E2E_TARGET=distribution`` to run the same checks against CNCF distribution.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.oci_suite_api import (
    API_BLOB_CANCEL,
    API_BLOB_CHUNKED,
    API_BLOB_DELETE,
    API_BLOB_DELETE_ATOMIC,
    API_BLOB_GET,
    API_BLOB_GET_RANGE,
    API_BLOB_HEAD,
    API_BLOB_MOUNT,
    API_BLOB_MOUNT_ANON,
    API_BLOB_POST_ONLY,
    API_BLOB_POST_PUT,
    API_BLOB_PUSH,
    API_BLOB_STREAM,
    API_MANIFEST_DELETE,
    API_MANIFEST_DELETE_ATOMIC,
    API_MANIFEST_GET_DIGEST,
    API_MANIFEST_GET_TAG,
    API_MANIFEST_HEAD_DIGEST,
    API_MANIFEST_HEAD_TAG,
    API_MANIFEST_PUT_DIGEST,
    API_MANIFEST_PUT_SUBJECT,
    API_MANIFEST_PUT_TAG,
    API_MANIFEST_PUT_TAG_PARAM,
    API_PING,
    API_REFERRERS,
    API_TAG_DELETE,
    API_TAG_DELETE_ATOMIC,
    API_TAG_LIST,
    Api,
    Credentials,
    Errs,
    Outcome,
    Problem,
    detect_subject,
    err,
    expect_body,
    expect_header,
    expect_status,
    has,
    marked,
    messages,
    raise_status,
    registry_and_client,
    show,
    wrap,
)
from tests.e2e.oci_suite_data import (
    AMD64,
    ARM64,
    CHUNK_MIN,
    COMP_UNCOMP,
    MT_EXAMPLE_CONF1,
    MT_EXAMPLE_CONF2,
    MT_OCI_EMPTY_JSON,
    MT_OCI_IMAGE,
    MT_OCI_LAYER_ND,
    MT_OCI_LAYER_ND_GZ,
    MT_OCTET_STREAM,
    Desc,
    GenOpts,
    TestData,
    algo_of,
    digest_of,
    rand_text,
)

pytestmark = pytest.mark.e2e

# --------------------------------------------------------------------------------------------------------------------
# config.go: what is switched on (dockyard's claims)
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SuiteConfig:
    repo1: str = "conformance/repo1"
    repo2: str = "conformance/repo2"
    blobs_upload_cancel: bool = True  # default only with OCI_VERSION=dev
    blobs_digest_header: bool = True  # default only with OCI_VERSION=dev
    manifests_digest_header: bool = True  # default only with OCI_VERSION=dev
    manifests_tag_param: bool = True  # default only with OCI_VERSION=dev
    referrer: bool = True
    sparse: bool = False  # default off in every version
    sha512: bool = True
    empty_blob: bool = True


DATA_TESTS = ["image", "image-uncompressed", "large-manifest", "index", "nested-index", "empty-index", "artifact",
              "artifact-index", "artifact-without-layers", "artifacts-with-subject", "index-with-subject",
              "missing-subject", "data-field", "non-distributable-layers", "custom-fields", "no-layers", "sha512",
              "tag-param-sha256", "tag-param-sha512", "bad-digest-image"]

BLOB_APIS = [API_BLOB_POST_PUT, API_BLOB_POST_ONLY, API_BLOB_STREAM, API_BLOB_CHUNKED]

# run.go "range 500-0": `Range: bytes=500-0` is syntactically invalid (last < first); RFC 9110 §14.2 lets a server
# ignore it and answer 200 with the whole blob, which the suite records as Skip ("range request unsupported"), not
# FAIL. Overall status and the "Blob get range" API status stay Pass.
TOLERATED_SKIPS = {"range 500-0"}


# --------------------------------------------------------------------------------------------------------------------
# run.go: the runner
# --------------------------------------------------------------------------------------------------------------------


class Runner:
    def __init__(self, api: Api, cfg: SuiteConfig) -> None:
        self.api = api
        self.cfg = cfg
        self.outcomes: list[Outcome] = []
        self.api_status: dict[str, str] = {}
        self.data: dict[str, TestData] = {}
        self.data_tests: list[str] = []
        self.blob_apis_tested: set[str] = set()
        self.blob_apis_tested_by_algo: dict[str, set[str]] = {}

    # --- results (run.go TestPass / TestFail / TestSkip) -------------------------------------------------------------

    def _record(self, path: str, status: str, errs: Errs, apis: Sequence[str]) -> None:
        self.outcomes.append(Outcome(path, status, errs))
        for a in apis:
            self.api_status[a] = raise_status(self.api_status.get(a, "Unknown"), status)

    def passed(self, path: str, apis: Sequence[str]) -> None:
        self._record(path, "Pass", [], apis)

    def failed(self, path: str, errs: Errs, apis: Sequence[str]) -> None:
        status = "FAIL"
        if has(errs, "error"):
            status = "Error"
        elif has(errs, "unsupported"):
            status = "Skip"
        self._record(path, status, errs, apis)

    def skipped(self, path: str, errs: Errs, apis: Sequence[str]) -> None:
        status = "Skip"
        if has(errs, "error"):
            status = "Error"
        elif has(errs, "fail"):
            status = "FAIL"
        self._record(path, status, errs, apis)

    def require(self, *apis: str) -> Errs:
        """APIRequire: which APIs the configuration disables."""
        disabled = {API_BLOB_CANCEL: not self.cfg.blobs_upload_cancel,
                    API_MANIFEST_PUT_TAG_PARAM: not self.cfg.manifests_tag_param,
                    API_REFERRERS: not self.cfg.referrer}
        return [Problem("skip", f"api {a} is disabled in the configuration") for a in apis if disabled.get(a)]

    # --- GenerateData ---------------------------------------------------------------------------------------------

    def _new_data(self, name: str, desc: str) -> TestData:
        td = TestData(desc)
        self.data[name] = td
        self.data_tests.append(name)
        return td

    def generate_data(self) -> None:
        cfg = self.cfg
        self._new_data("image", "Image").gen_manifest_full({"tag": "image"})
        self._new_data("image-uncompressed", "Image Uncompressed").gen_manifest_full(
            {"tag": "image-uncompressed", "comp": COMP_UNCOMP})
        large = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
        self._new_data("large-manifest", "Image with Large Manifest").gen_manifest_full(
            {"tag": "large-manifest", "annotations": large})
        self._new_data("index", "Index").gen_index_full({"tag": "index", "platforms": [AMD64, ARM64]})
        td = self._new_data("nested-index", "Nested Index")
        dig1 = td.gen_index_full({"platforms": [AMD64, ARM64]})
        dig2 = td.gen_index_full({"platforms": [AMD64, ARM64]})
        td.gen_index([None, None], [dig1, dig2], {"tag": "index-of-index"})
        self._new_data("empty-index", "Empty Index").gen_index_full({"tag": "index", "platforms": []})
        artifact: GenOpts = {"artifact_type": MT_EXAMPLE_CONF1, "config_media_type": MT_OCI_EMPTY_JSON,
                             "config_bytes": b"{}", "layer_count": 1, "layer_media_type": MT_EXAMPLE_CONF1}
        self._new_data("artifact", "Artifact").gen_manifest_full({"tag": "artifact", **artifact})
        self._new_data("artifact-index", "Artifact Index").gen_index_full(
            {"tag": "artifact-index", "platforms": [AMD64, ARM64], **artifact})
        self._new_data("artifact-without-layers", "Artifact without Layers").gen_manifest_full(
            {"tag": "artifact-without-layers", "artifact_type": MT_EXAMPLE_CONF1,
             "config_media_type": MT_OCI_EMPTY_JSON, "config_bytes": b"{}", "layer_count": 1, "layer_bytes": b"{}",
             "layer_media_type": MT_OCI_EMPTY_JSON})
        hello = {"org.opencontainers.conformance": "hello conformance test"}
        td = self._new_data("artifacts-with-subject", "Artifacts with Subject")
        subj_dig = td.gen_manifest_full({"tag": "image"})
        subj = dataclasses.replace(td.desc[subj_dig])
        td.gen_manifest_full({"subject": subj})
        td.gen_manifest_full({"artifact_type": MT_EXAMPLE_CONF1, "annotations": hello, "annotation_uniq": True,
                              "config_media_type": MT_OCI_EMPTY_JSON, "config_bytes": b"{}", "layer_count": 1,
                              "layer_media_type": MT_EXAMPLE_CONF1, "subject": subj, "tag": "tagged-artifact1"})
        td.gen_manifest_full({"artifact_type": MT_EXAMPLE_CONF2, "annotations": hello, "annotation_uniq": True,
                              "config_media_type": MT_OCI_EMPTY_JSON, "config_bytes": b"{}", "layer_count": 1,
                              "layer_media_type": MT_OCTET_STREAM, "subject": subj, "tag": "tagged-artifact2"})
        td = self._new_data("index-with-subject", "Index with Subject")
        subj_dig = td.gen_index_full({"tag": "index"})
        subj = dataclasses.replace(td.desc[subj_dig])
        td.gen_index_full({"artifact_type": MT_EXAMPLE_CONF1, "annotations": hello, "annotation_uniq": True,
                           "config_media_type": MT_OCI_EMPTY_JSON, "config_bytes": b"{}", "layer_count": 1,
                           "layer_media_type": MT_EXAMPLE_CONF1, "subject": subj, "tag": "tagged-artifact"})
        td = self._new_data("missing-subject", "Missing Subject")
        missing = Desc(MT_OCI_IMAGE, digest_of(b"missing content"), 123)
        td.gen_manifest_full({"artifact_type": MT_EXAMPLE_CONF1, "annotations": hello, "annotation_uniq": True,
                              "config_media_type": MT_OCI_EMPTY_JSON, "config_bytes": b"{}", "layer_count": 1,
                              "layer_media_type": MT_EXAMPLE_CONF1, "subject": missing, "tag": "tagged-artifact"})
        self._new_data("data-field", "Data Field").gen_manifest_full({"tag": "data-field", "set_data": True})
        td = self._new_data("non-distributable-layers", "Non-distributable Layers")
        conf_digs = [digest_of(os.urandom(256))]
        dig = digest_of(os.urandom(256))
        layers = [Desc(MT_OCI_LAYER_ND_GZ, dig, 123456,
                       urls=[f"https://store.example.com/blobs/sha256/{dig.split(':')[1]}"])]
        dig = digest_of(os.urandom(256))
        conf_digs.append(dig)
        layers.append(Desc(MT_OCI_LAYER_ND, dig, 12345,
                           urls=[f"https://store.example.com/blobs/sha256/{dig.split(':')[1]}"]))
        c_dig, uc_dig, _ = td.gen_layer(1, {})
        conf_digs.append(uc_dig)
        layers.append(dataclasses.replace(td.desc[c_dig]))
        cfg_dig, _ = td.gen_config(AMD64, conf_digs, {})
        td.gen_manifest(dataclasses.replace(td.desc[cfg_dig]), layers, {"tag": "non-distributable-image"})
        self._new_data("custom-fields", "Custom Fields").gen_index_full(
            {"tag": "custom-fields", "platforms": [AMD64, ARM64], "extra_field": True})
        self._new_data("no-layers", "No Layers").gen_manifest_full({"tag": "no-layers", "layer_count": 0})
        assert not cfg.sparse  # "sparse" data: off by default in every spec version
        if cfg.sha512:
            self._new_data("sha512", "Digest Algorithm sha512").gen_index_full({"algo": "sha512"})
        for algo in ("sha256", "sha512"):
            if not cfg.manifests_tag_param or (algo == "sha512" and not cfg.sha512):
                continue
            name = f"tag-param-{algo}"
            td = self._new_data(name, "Tag Param" if algo == "sha256" else "Tag Param sha512")
            td.gen_index_full({"tag": name, "algo": algo})
            for i, dig in enumerate(td.man_order):
                td.tags[f"{name}-{i}"] = dig
                td.push_flags[dig] = {"TagParam"}
        td = self._new_data("bad-digest-image", "Bad Digest Image")
        dig = td.gen_manifest_full({})
        td.pull_flags[dig] = {"SkipPullTest"}
        td.push_flags[dig] = {"ExpectBadDigest"}
        td.manifests[dig] += b"  "  # whitespace makes the digest mismatch

    # --- TestPing / TestEmpty -------------------------------------------------------------------------------------

    def test_ping(self) -> None:
        path = "ping"
        errs = self.api.ping()
        if errs:
            self.failed(path, errs, [API_PING])
        else:
            self.passed(path, [API_PING])

    def test_empty(self, repo: str) -> None:
        path = "empty/tag list"
        _, errs = self.api.tag_list(repo)
        if errs:
            self.failed(path, errs, [API_TAG_LIST])
        else:
            self.passed(path, [API_TAG_LIST])
        path = "empty/referrers"
        subj = digest_of(rand_text().encode())
        _, errs = self.api.referrers_list(repo, subj)
        if errs:
            self.failed(path, errs, [API_REFERRERS])
        else:
            self.passed(path, [API_REFERRERS])

    # --- the blob push flavours -------------------------------------------------------------------------------------

    def _blob_flags(self, flags: set[str]) -> set[str]:
        return flags | {"RequireDigestHeader"} if self.cfg.blobs_digest_header else set(flags)

    def push_blob_post_put(self, parent: str, td: TestData, repo: str, dig: str, flags: set[str]) -> Errs:
        path = f"{parent}/blob-post-put"
        errs = self.api.blob_post_put(repo, dig, td, self._blob_flags(flags))
        if errs:
            self.failed(path, errs, [API_BLOB_POST_PUT])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_POST_PUT, API_BLOB_PUSH])
        return []

    def push_blob_post_only(self, parent: str, td: TestData, repo: str, dig: str, flags: set[str]) -> Errs:
        path = f"{parent}/blob-post-only"
        errs = self.api.blob_post_only(repo, dig, td, self._blob_flags(flags))
        if errs:
            self.failed(path, errs, [API_BLOB_POST_ONLY])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_POST_ONLY, API_BLOB_PUSH])
        return []

    def push_blob_patch_chunked(self, parent: str, td: TestData, repo: str, dig: str, flags: set[str]) -> Errs:
        path = f"{parent}/blob-patch-chunked"
        errs = self.api.blob_patch_chunked(repo, dig, td, self._blob_flags(flags))
        if errs:
            self.failed(path, errs, [API_BLOB_CHUNKED])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_CHUNKED, API_BLOB_PUSH])
        return []

    def push_blob_patch_stream(self, parent: str, td: TestData, repo: str, dig: str, flags: set[str]) -> Errs:
        path = f"{parent}/blob-patch-stream"
        errs = self.api.blob_patch_stream(repo, dig, td, self._blob_flags(flags))
        if errs:
            self.failed(path, errs, [API_BLOB_STREAM])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_STREAM, API_BLOB_PUSH])
        return []

    def push_blob_post_cancel(self, parent: str, td: TestData, repo: str) -> Errs:
        path = f"{parent}/blob-post-cancel"
        disabled = self.require(API_BLOB_PUSH, API_BLOB_CANCEL)
        if disabled:
            self.skipped(path, disabled, [API_BLOB_PUSH, API_BLOB_CANCEL])
            return marked(disabled, "skip")
        errs = self.api.blob_post_cancel(repo)
        if errs:
            self.failed(path, errs, [API_BLOB_PUSH, API_BLOB_CANCEL])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_PUSH, API_BLOB_CANCEL])
        return []

    def push_blob_mount(self, parent: str, td: TestData, repo: str, repo2: str, dig: str) -> Errs:
        path = f"{parent}/blob-mount"
        errs = self.api.blob_mount(repo, repo2, dig, td, set())
        if errs:
            self.failed(path, errs, [API_BLOB_MOUNT])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_MOUNT])
        return []

    def push_blob_mount_anonymous(self, parent: str, td: TestData, repo: str, dig: str) -> Errs:
        path = f"{parent}/blob-mount-anonymous"
        errs = self.api.blob_mount(repo, "", dig, td, set())
        if errs:
            self.failed(path, errs, [API_BLOB_MOUNT_ANON])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_MOUNT_ANON])
        return []

    def push_blob_mount_missing(self, parent: str, td: TestData, repo: str, repo2: str, dig: str) -> Errs:
        path = f"{parent}/blob-mount"
        errs = self.api.blob_mount(repo, repo2, dig, td, set())
        if not has(errs, "unsupported"):
            if not errs:
                errs = err("blob mount of missing blob incorrectly succeeded (registry answered 201)")
            self.failed(path, errs, [API_BLOB_MOUNT])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_MOUNT])
        return []

    def push_blob_any(self, parent: str, td: TestData, repo: str, dig: str, flags: set[str] | None = None) -> Errs:
        """TestPushBlobAny: untested APIs first, then untested for this algorithm, then passing ones, then the rest."""
        flags = flags or set()
        algo = algo_of(dig)
        by_algo = self.blob_apis_tested_by_algo.setdefault(algo, set())
        apis = [a for a in BLOB_APIS if a not in self.blob_apis_tested]
        apis += [a for a in BLOB_APIS if a not in by_algo and a not in apis]
        apis += [a for a in BLOB_APIS if self.api_status.get(a) == "Pass" and a not in apis]
        apis += [a for a in BLOB_APIS if a not in apis]
        errs: Errs = []
        for a in apis:
            if a == API_BLOB_POST_PUT:
                e = self.push_blob_post_put(parent, td, repo, dig, flags)
            elif a == API_BLOB_POST_ONLY:
                e = self.push_blob_post_only(parent, td, repo, dig, flags)
            elif a == API_BLOB_STREAM:
                e = self.push_blob_patch_stream(parent, td, repo, dig, flags)
            else:
                e = self.push_blob_patch_chunked(parent, td, repo, dig, flags)
            self.blob_apis_tested.add(a)
            by_algo.add(a)
            if not e:
                return []
            errs += e
        return errs

    # --- head / get / delete of blobs -------------------------------------------------------------------------------

    def head_blob(self, parent: str, td: TestData, repo: str, dig: str, flags: set[str] | None = None) -> Errs:
        if "SkipPullTest" in (flags or set()):
            return []
        path = f"{parent}/blob-head"
        errs = self.api.blob_head_exists(repo, dig, td, self._blob_flags(set()))
        if errs:
            self.failed(path, errs, [API_BLOB_HEAD])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_HEAD])
        return []

    def pull_blob(self, parent: str, td: TestData, repo: str, dig: str, flags: set[str] | None = None) -> Errs:
        if "SkipPullTest" in (flags or set()):
            return []
        path = f"{parent}/blob-get"
        errs = self.api.blob_get_exists_full(repo, dig, td, self._blob_flags(flags or set()))
        if errs:
            self.failed(path, errs, [API_BLOB_GET])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_GET])
        return []

    def delete_blob(self, parent: str, repo: str, dig: str) -> Errs:
        path = f"{parent}/blob-delete"
        errs = self.api.blob_delete(repo, dig)
        if errs:
            self.failed(path, errs, [API_BLOB_DELETE])
            self.skipped(path + " (atomic)", errs, [API_BLOB_DELETE_ATOMIC])
            return marked(errs, "fail")
        self.passed(path, [API_BLOB_DELETE])
        resp = self.api.blob_head_req(repo, dig)
        errs = wrap("blob head failed", expect_status(resp, 404))
        if errs:
            self.failed(path + " (atomic)", errs, [API_BLOB_DELETE_ATOMIC])
            return marked(errs, "fail")
        self.passed(path + " (atomic)", [API_BLOB_DELETE_ATOMIC])
        return []

    # --- TestBlobAPIs -----------------------------------------------------------------------------------------------

    def test_blob_apis(self, algo: str, repo: str, repo2: str) -> None:
        root = f"{algo} blobs"
        td = TestData(f"Blobs {algo}")
        self.data[f"blobs-{algo}"] = td
        self.blob_apis_tested_by_algo.setdefault(algo, set())
        names = ["post only", "post+put", "chunked single", "stream", "mount", "mount anonymous", "mount missing",
                 "post cancel"]
        digests = {name: td.gen_blob({"blob_size": 512, "algo": algo})[0] for name in names}
        # try pulling a blob that has not been pushed
        path = f"{root}/get-missing"
        resp = self.api.blob_get_req(repo, digests["post cancel"])
        errs = wrap("blob get failed", expect_status(resp, 404))
        if errs:
            self.failed(path, errs, [API_BLOB_GET])
        else:
            self.passed(path, [API_BLOB_GET])
        names += ["chunked multi", "chunked multi and put chunk", "chunked out-of-order",
                  "chunked out-of-order and put chunk"]
        min_chunk = CHUNK_MIN
        for name in names:
            path = f"{root}/{name}"
            e: Errs = []
            dig = digests.get(name, "")
            api = ""
            if name == "post only":
                api = API_BLOB_POST_ONLY
                e = self.push_blob_post_only(path, td, repo, dig, set())
            elif name == "post+put":
                api = API_BLOB_POST_PUT
                e = self.push_blob_post_put(path, td, repo, dig, set())
            elif name == "chunked single":
                api = API_BLOB_CHUNKED
                self.api.watch = {"OCI-Chunk-Min-Length": ""}
                try:
                    e = self.push_blob_patch_chunked(path, td, repo, dig, set())
                finally:
                    min_header = self.api.watch["OCI-Chunk-Min-Length"]
                    self.api.watch = None
                if min_header.isdigit() and int(min_header) > min_chunk:
                    min_chunk = int(min_header)
            elif name.startswith("chunked"):
                api = API_BLOB_CHUNKED
                dig, _ = td.gen_blob({"blob_size": min_chunk * 3 - 5, "algo": algo})
                digests[name] = dig
                flags = {"chunked multi": set(), "chunked multi and put chunk": {"PutLastChunk"},
                         "chunked out-of-order": {"OutOfOrderChunks"},
                         "chunked out-of-order and put chunk": {"PutLastChunk", "OutOfOrderChunks"}}[name]
                e = self.push_blob_patch_chunked(path, td, repo, dig, flags)
            elif name == "stream":
                api = API_BLOB_STREAM
                e = self.push_blob_patch_stream(path, td, repo, dig, set())
            elif name == "post cancel":
                api = API_BLOB_POST_PUT
                e = self.push_blob_post_cancel(path, td, repo)
            elif name == "mount":
                api = API_BLOB_MOUNT
                self.push_blob_any(path, td, repo2, dig)
                e = self.push_blob_mount(path, td, repo, repo2, dig)
            elif name == "mount anonymous":
                api = API_BLOB_MOUNT_ANON
                self.push_blob_any(path, td, repo2, dig)
                e = self.push_blob_mount_anonymous(path, td, repo, dig)
            elif name == "mount missing":
                e = self.push_blob_mount_missing(path, td, repo, repo2, dig)
            self.blob_apis_tested.add(api)
            self.blob_apis_tested_by_algo[algo].add(api)
            if not e and name != "post cancel":
                self.head_blob(path, td, repo, dig)
                self.pull_blob(path, td, repo, dig)
            self.delete_blob(path, repo, dig)
            if name in ("mount", "mount anonymous"):
                self.delete_blob(path, repo2, dig)
        self._range_requests(root, td, algo, repo)
        # well known blob contents
        known = {"empty": b"", "emptyJSON": b"{}"} if self.cfg.empty_blob else {"emptyJSON": b"{}"}
        for name, val in known.items():
            dig = digest_of(val, algo)
            td.blobs[dig] = val
            path = f"{root}/{name}"
            self.push_blob_any(path, td, repo, dig)
            self.head_blob(path, td, repo, dig)
            self.pull_blob(path, td, repo, dig)
            self.delete_blob(path, repo, dig)
        # the push flavours with content that does not match its digest
        bad_tests = ["bad digest post only", "bad digest post+put", "bad digest chunked",
                     "bad digest chunked and put chunk", "bad digest stream"]
        bad: dict[str, str] = {}
        for name in bad_tests:
            dig, _ = td.gen_blob({"blob_size": min_chunk * 3 - 5, "algo": algo})
            td.blobs[dig] += b"oh no"
            bad[name] = dig
        flag = {"ExpectBadDigest"}
        for name in bad_tests:
            path = f"{root}/{name}"
            if name == "bad digest post only":
                self.push_blob_post_only(path, td, repo, bad[name], flag)
            elif name == "bad digest post+put":
                self.push_blob_post_put(path, td, repo, bad[name], flag)
            elif name in ("bad digest chunked", "bad digest chunked and put chunk"):  # Go passes no PutLastChunk
                self.push_blob_patch_chunked(path, td, repo, bad[name], flag)
            else:
                self.push_blob_patch_stream(path, td, repo, bad[name], flag)

    def _range_requests(self, root: str, td: TestData, algo: str, repo: str) -> None:
        parent = f"{root}/range requests"
        size = 2048
        dig, blob = td.gen_blob({"blob_size": size, "algo": algo})
        errs = self.push_blob_any(parent, td, repo, dig)
        if errs:
            self.skipped(parent, errs, [API_BLOB_GET_RANGE])
            return
        cases: list[tuple[str, str, bytes | None, str]] = [
            ("range 500-1499", "bytes=500-1499", blob[500:1500], f"500-1499/{size}"),
            ("range 500-", "bytes=500-", blob[500:], f"500-{size - 1}/{size}"),
            ("range -500", "bytes=-500", blob[size - 500:], f"{size - 500}-{size - 1}/{size}"),
            ("range 2000-5000", "bytes=2000-5000", blob[2000:], f"2000-{size - 1}/{size}"),
            ("range 500-0", "bytes=500-0", None, ""),
            ("range 5000-10000", "bytes=5000-10000", None, ""),
        ]
        for name, rng, want, content_range in cases:
            path = f"{parent}/{name}"
            resp = self.api.blob_get_req(repo, dig, headers=[("Range", rng)])
            if want is not None:
                total, star = content_range, content_range.split("/")[0] + "/*"
                primary = (expect_body(resp, want) + expect_status(resp, 206)
                           + expect_header(resp, "Content-Length", str(len(want))))
                cr = expect_header(resp, "Content-Range", f"bytes {total}")
                if cr and expect_header(resp, "Content-Range", f"bytes {star}"):
                    primary += cr
            else:
                primary = expect_status(resp, 416)
            fallback = (expect_status(resp, 200) + expect_header(resp, "Content-Length", str(size))
                        + expect_body(resp, blob))
            if primary and fallback:
                self.failed(path, wrap("blob get failed: response did not match any condition", primary + fallback),
                            [API_BLOB_GET_RANGE])
            elif primary:  # the fallback matched: a full 200
                self.failed(path, err(f"range request unsupported, full blob returned {show(resp)}", "unsupported"),
                            [API_BLOB_GET_RANGE])
            else:
                self.passed(path, [API_BLOB_GET_RANGE])
        self.delete_blob(parent, repo, dig)

    # --- manifests --------------------------------------------------------------------------------------------------

    def _manifest_flags(self, flags: set[str]) -> set[str]:
        return flags | {"RequireDigestHeader"} if self.cfg.manifests_digest_header else set(flags)

    def push_manifest_digest(self, parent: str, td: TestData, repo: str, dig: str, flags: set[str]) -> Errs:
        path = f"{parent}/manifest-by-digest"
        apis = [API_MANIFEST_PUT_DIGEST]
        if detect_subject(td.manifests[dig]) is not None:
            apis.append(API_MANIFEST_PUT_SUBJECT)
        params: list[tuple[str, str]] = []
        expect_tags: list[str] = []
        if "TagParam" in flags:
            apis.append(API_MANIFEST_PUT_TAG_PARAM)
            for tag, d in td.tags.items():
                if d == dig:
                    params.append(("tag", tag))
                    expect_tags.append(tag)
        disabled = self.require(*apis)
        if disabled:
            self.skipped(path, disabled, apis)
            return marked(disabled, "skip")
        errs, resp = self.api.manifest_put(repo, dig, dig, td, self.cfg.referrer, params,
                                           self._manifest_flags(flags))
        if errs:
            self.failed(path, errs, apis)
            return marked(errs, "fail")
        if expect_tags:
            missing: Errs = []
            values = resp.headers.get_list("OCI-Tag") if resp is not None else []
            for tag in expect_tags:
                if any(s.strip() == tag for v in values for s in v.split(",")):
                    td.tag_pushed[tag] = True
                else:
                    missing += err(f"header missing OCI-Tag: {tag} (OCI-Tag values {values!r}) "
                                   f"{show(resp) if resp else ''}", "unsupported")
            if missing:
                self.failed(path, missing, [API_MANIFEST_PUT_TAG_PARAM])
                return marked(missing, "fail")
        self.passed(path, apis)
        return []

    def push_manifest_tag(self, parent: str, td: TestData, repo: str, tag: str, dig: str, flags: set[str]) -> Errs:
        if td.tag_pushed.get(tag):
            return []
        path = f"{parent}/manifest-by-tag"
        apis = [API_MANIFEST_PUT_SUBJECT] if detect_subject(td.manifests[dig]) is not None else []
        apis.append(API_MANIFEST_PUT_TAG)
        errs, _ = self.api.manifest_put(repo, tag, dig, td, self.cfg.referrer, (), self._manifest_flags(flags))
        if errs:
            self.failed(path, errs, apis)
            return marked(errs, "fail")
        td.tag_pushed[tag] = True
        self.passed(path, apis)
        return []

    def _manifest_check(self, path: str, errs: Errs, api: str, flags: set[str] | None) -> Errs:
        if errs:
            self.failed(path, errs, [api])
            return marked(errs, "fail")
        self.passed(path, [api])
        return []

    def head_manifest(self, parent: str, td: TestData, repo: str, ref: str, dig: str, by_tag: bool,
                      flags: set[str]) -> Errs:
        if "SkipPullTest" in flags:
            return []
        path = f"{parent}/manifest-head-by-{'tag' if by_tag else 'digest'}"
        errs = self.api.manifest_head_exists(repo, ref, dig, td, self._manifest_flags(set()))
        return self._manifest_check(path, errs, API_MANIFEST_HEAD_TAG if by_tag else API_MANIFEST_HEAD_DIGEST,
                                    flags)

    def pull_manifest(self, parent: str, td: TestData, repo: str, ref: str, dig: str, by_tag: bool,
                      flags: set[str]) -> Errs:
        if "SkipPullTest" in flags:
            return []
        path = f"{parent}/manifest-by-{'tag' if by_tag else 'digest'}"
        errs = self.api.manifest_get_exists(repo, ref, dig, td, self._manifest_flags(flags))
        return self._manifest_check(path, errs, API_MANIFEST_GET_TAG if by_tag else API_MANIFEST_GET_DIGEST, flags)

    def delete_tag(self, parent: str, td: TestData, repo: str, tag: str) -> Errs:
        if not td.tag_pushed.get(tag):
            return []
        path = f"{parent}/tag-delete"
        errs = self.api.manifest_delete(repo, tag)
        if errs:
            self.failed(path, errs, [API_TAG_DELETE])
            self.skipped(path + " (atomic)", errs, [API_TAG_DELETE_ATOMIC])
            return marked(errs, "fail")
        self.passed(path, [API_TAG_DELETE])
        resp = self.api.manifest_head_req(repo, tag)
        errs = wrap("manifest head failed", expect_status(resp, 404))
        if errs:
            self.failed(path + " (atomic)", errs, [API_TAG_DELETE_ATOMIC])
            return marked(errs, "fail")
        self.passed(path + " (atomic)", [API_TAG_DELETE_ATOMIC])
        return []

    def delete_manifest(self, parent: str, repo: str, dig: str) -> Errs:
        path = f"{parent}/manifest-delete"
        errs = self.api.manifest_delete(repo, dig)
        if errs:
            self.failed(path, errs, [API_MANIFEST_DELETE])
            self.skipped(path + " (atomic)", errs, [API_MANIFEST_DELETE_ATOMIC])
            return marked(errs, "fail")
        self.passed(path, [API_MANIFEST_DELETE])
        resp = self.api.manifest_head_req(repo, dig)
        errs = wrap("manifest head failed", expect_status(resp, 404))
        if errs:
            self.failed(path + " (atomic)", errs, [API_MANIFEST_DELETE_ATOMIC])
            return marked(errs, "fail")
        self.passed(path + " (atomic)", [API_MANIFEST_DELETE_ATOMIC])
        return []

    # --- one data set: push, list, head, pull, referrers, delete -----------------------------------------------------

    def test_data(self, td_name: str, repo: str) -> None:
        td = self.data[td_name]
        root = td_name
        for dig in list(td.blobs):
            self.push_blob_any(f"{root}/push", td, repo, dig, td.push_flags.get(dig, set()))
        for dig in td.man_order:
            self.push_manifest_digest(f"{root}/push", td, repo, dig, td.push_flags.get(dig, set()))
        for tag, dig in td.tags.items():
            self.push_manifest_tag(f"{root}/push", td, repo, tag, dig, td.push_flags.get(dig, set()))
        self.test_list(f"{root}/tag-list", td, repo)
        for tag, dig in td.tags.items():
            self.head_manifest(f"{root}/head", td, repo, tag, dig, True, td.pull_flags.get(dig, set()))
        for dig in td.man_order:
            self.head_manifest(f"{root}/head", td, repo, dig, dig, False, td.pull_flags.get(dig, set()))
        for dig in td.blobs:
            self.head_blob(f"{root}/head", td, repo, dig, td.pull_flags.get(dig, set()))
        for tag, dig in td.tags.items():
            self.pull_manifest(f"{root}/pull", td, repo, tag, dig, True, td.pull_flags.get(dig, set()))
        for dig in td.man_order:
            self.pull_manifest(f"{root}/pull", td, repo, dig, dig, False, td.pull_flags.get(dig, set()))
        for dig in td.blobs:
            self.pull_blob(f"{root}/pull", td, repo, dig, td.pull_flags.get(dig, set()))
        self.test_referrers(f"{root}/referrers", td, repo)
        self.test_delete(f"{root}/delete", td, repo)

    def test_delete(self, path: str, td: TestData, repo: str) -> None:
        for tag in td.tags:
            self.delete_tag(path, td, repo, tag)
        for dig in reversed(td.man_order):
            self.delete_manifest(path, repo, dig)
        for dig in td.blobs:
            self.delete_blob(path, repo, dig)

    def test_list(self, path: str, td: TestData, repo: str) -> None:
        tags, errs = self.api.tag_list(repo)
        if errs:
            self.failed(path, errs, [API_TAG_LIST])
            return
        problems: Errs = []
        for tag in td.tags:
            if tag not in tags:
                problems += err(f"missing tag {tag!r} from listing {tags!r}", "fail")
        if len(tags) >= 2:
            ordered = sorted(tags)
            end = len(ordered) // 2
            last = ordered[end - 1]
            partial, errs = self.api.tag_list(repo, [("last", last)])
            if errs:
                self.failed(path, errs, [API_TAG_LIST])
                return
            for tag in ordered[:end]:
                if tag in partial:
                    problems += err(f"tag {tag!r} returned when last set to {last!r}: {partial!r}", "fail")
            for tag in ordered[end:]:
                if tag not in partial:
                    problems += err(f"tag {tag!r} missing when last set to {last!r}: {partial!r}", "fail")
        if problems:
            self.failed(path, problems, [API_TAG_LIST])
        else:
            self.passed(path, [API_TAG_LIST])

    def test_referrers(self, path: str, td: TestData, repo: str) -> None:
        if not td.referrers:
            return
        problems: Errs = []

        def matches(entry: dict[str, Any], goal: Desc) -> bool:
            annotations = entry.get("annotations") or {}
            return (entry.get("digest") == goal.digest and entry.get("mediaType") == goal.media_type
                    and entry.get("size") == goal.size and (entry.get("artifactType") or "") == goal.artifact_type
                    and all(annotations.get(k) == v for k, v in (goal.annotations or {}).items()))

        for subj, goals in td.referrers.items():
            index, errs = self.api.referrers_list(repo, subj)
            problems += errs
            if not errs:
                entries = index.get("manifests") or []
                for goal in goals:
                    if not any(matches(e, goal) for e in entries):
                        problems += err(f"entry missing from referrers list, subject {subj}, referrer {goal} "
                                        f"(listed: {json.dumps(entries)[:600]})", "fail")
            for artifact_type in dict.fromkeys(g.artifact_type for g in goals):
                returned = {"OCI-Filters-Applied": ""}
                index, errs = self.api.referrers_list(repo, subj, [("artifactType", artifact_type)], returned)
                problems += errs
                if errs:
                    continue
                applied = any(f.strip() == "artifactType" for f in returned["OCI-Filters-Applied"].split(","))
                if not applied:
                    problems += err(f"registry does not set the expected OCI-Filters-Applied header for the "
                                    f"artifactType {artifact_type} (got {returned['OCI-Filters-Applied']!r})",
                                    "unsupported")
                entries = index.get("manifests") or []
                for goal in goals:
                    if (not applied or goal.artifact_type == artifact_type) and not any(
                            matches(e, goal) for e in entries):
                        problems += err(f"entry missing from filtered referrers list ({artifact_type}), subject "
                                        f"{subj}, referrer {goal}", "fail")
                if applied:
                    for e in entries:
                        if (e.get("artifactType") or "") != artifact_type:
                            problems += err(f"referrers filter for artifactType {artifact_type} included "
                                            f"descriptor {e}", "error")
        if problems:
            self.failed(path, problems, [API_REFERRERS])
        else:
            self.passed(path, [API_REFERRERS])

    # --- TestManifestErrors -----------------------------------------------------------------------------------------

    def test_manifest_errors(self, repo: str) -> None:
        path = "missing-manifest/by-digest"
        resp = self.api.manifest_get_req(repo, digest_of(os.urandom(1024)))
        errs = wrap("manifest get failed", expect_status(resp, 404))
        if errs:
            self.failed(path, errs, [API_MANIFEST_GET_DIGEST])
        else:
            self.passed(path, [API_MANIFEST_GET_DIGEST])
        path = "missing-manifest/by-tag"
        resp = self.api.manifest_get_req(repo, f"missing-{rand_text().lower()[:20]}")
        errs = wrap("manifest get failed", expect_status(resp, 404))
        if errs:
            self.failed(path, errs, [API_MANIFEST_GET_TAG])
        else:
            self.passed(path, [API_MANIFEST_GET_TAG])
        root = "invalid-digest-format"
        td = TestData("Invalid Manifest Digest")
        self.data["invalid-manifest-digest"] = td
        man_dig = td.gen_manifest_full({"layer_count": 1})
        for dig in list(td.blobs):
            self.push_blob_any(root, td, repo, dig)
        path = f"{root}/manifest-put"
        errs, _ = self.api.manifest_put(repo, "sha256:baddigeststring", man_dig, td, self.cfg.referrer, (),
                                        {"ExpectBadDigest"})
        if errs:
            self.failed(path, errs, [API_MANIFEST_PUT_DIGEST])
        else:
            self.passed(path, [API_MANIFEST_PUT_DIGEST])
        path = f"{root}/manifest-get"
        resp = self.api.manifest_get_req(repo, "sha256:baddigeststring")
        errs = wrap("manifest get failed", expect_status(resp, 404, 400))
        if errs:
            self.failed(path, errs, [API_MANIFEST_GET_DIGEST])
        else:
            self.passed(path, [API_MANIFEST_GET_DIGEST])
        self.test_delete(f"{root}/delete", td, repo)

    # --- pytest glue ------------------------------------------------------------------------------------------------

    @contextmanager
    def checking(self) -> Iterator[None]:
        """Run the block, then `check` the leaves it recorded."""
        start = len(self.outcomes)
        yield
        self.check(start)

    def check(self, start: int) -> None:
        """Fail the calling pytest test if any leaf since `start` ended in anything but Pass.

        A Skip (``errRegUnsupported``) fails too, since every optional API switched on here is one dockyard claims;
        the one exception is a leaf in ``TOLERATED_SKIPS``, where the behaviour the suite calls "unsupported" is
        one the HTTP spec allows and dockyard does not claim otherwise.
        """
        bad = [o for o in self.outcomes[start:] if o.status not in ("Pass", "Disabled")
               and not (o.status == "Skip" and o.path.rsplit("/", 1)[-1] in TOLERATED_SKIPS)]
        if not bad:
            return
        lines = []
        for o in bad:
            lines.append(f"- {o.path}: suite status {o.status}")
            lines.extend(f"    {m}" for m in messages(o.errs))
        pytest.fail(f"{len(bad)} of {len(self.outcomes) - start} checks did not pass:\n" + "\n".join(lines),
                    pytrace=False)


# --------------------------------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    cache_auth = (os.environ.get("OCI_CACHE_AUTH") or "true").lower() in ("1", "t", "true")  # config.go CacheAuth
    with registry_and_client(tmp_path_factory.mktemp("oci-conformance-next") / "data") as (registry, go_client):
        r = Runner(Api(go_client, registry.url, Credentials.from_env(), cache_auth=cache_auth), SuiteConfig())
        r.generate_data()
        assert r.data_tests == DATA_TESTS
        yield r


# --------------------------------------------------------------------------------------------------------------------
# the runner generation: run.go TestAll, in its order
# --------------------------------------------------------------------------------------------------------------------


def test_ping(runner: Runner) -> None:
    """run.go TestPing → api.go PingReq: GET /v2/."""
    with runner.checking():
        runner.test_ping()


def test_empty_repository(runner: Runner) -> None:
    """run.go TestEmpty: TestEmptyTagList (200 or 404) and TestEmptyReferrers (an empty OCI index)."""
    with runner.checking():
        runner.test_empty(runner.cfg.repo1)


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_blob_apis(runner: Runner, algo: str) -> None:
    """run.go TestBlobAPIs: get-missing, post only, post+put, chunked (single, multi, put chunk, out-of-order),
    stream, mount, anonymous mount, mount missing, post cancel, range requests, empty/emptyJSON blobs, bad digests."""
    with runner.checking():
        runner.test_blob_apis(algo, runner.cfg.repo1, runner.cfg.repo2)


@pytest.mark.parametrize("td_name", DATA_TESTS)
def test_data(runner: Runner, td_name: str) -> None:
    """run.go TestAll data loop: TestPush, TestList, TestHead, TestPull, TestReferrers, TestDelete per data set
    (data from run.go GenerateData)."""
    with runner.checking():
        runner.test_data(td_name, runner.cfg.repo1)


def test_manifest_errors(runner: Runner) -> None:
    """run.go TestManifestErrors: missing-manifest by digest/tag (404); PUT/GET sha256:baddigeststring."""
    with runner.checking():
        runner.test_manifest_errors(runner.cfg.repo1)
