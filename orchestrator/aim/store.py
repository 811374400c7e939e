"""The care-plan documents in MongoDB (pymongo): one document per FLP_AIM id, ``_id`` = the AIM id.

Writes are ``insert_many(ordered=False)``: a document whose ``_id`` is there
already (a redelivered message) answers duplicate key (11000) and counts as
written; inserting and tolerating duplicates is far cheaper than upserting on
the servers we measured (engineering notes). Any other write error is the
message's problem; a lost or unreachable server (``ConnectionFailure``) is the
infrastructure's, and the consumer waits for it without spending attempts.

The URL is handed to MongoClient as it is, so TLS and authentication options
(``tls=true&tlsCAFile=...``, ``authSource``) pass through; write concern and
timeouts come from the settings (Ops.Setting, job aim_consume).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pymongo
import pymongo.errors
from pymongo.write_concern import WriteConcern

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
# The obvious questions (docs/aim-document.md, "The questions and their indexes"):
# a patient's documents (patient.cpr), one RKKP database's documents by time (the
# compound), and everything created since a time: the compound again, with
# rkkpDatabase $in RKKP_DATABASES (and null) plus the range on aimCreatedUtc. Two
# secondary indexes, not three: each one costs the server CPU on every insert.
INDEXES = (
    ([("patient.cpr", pymongo.ASCENDING)], "patient_cpr"),
    ([("rkkpDatabase", pymongo.ASCENDING), ("aimCreatedUtc", pymongo.ASCENDING)], "rkkp_created"),
)
# The RKKP databases a document can name (Job.aim_documents' mapping); None for a
# care plan of no RKKP database. "Created since T" lists them all in its $in.
RKKP_DATABASES = ("DVDD", "DrKOL", "DHR", None)
# Indexes earlier versions created and this one no longer wants: dropped by
# ensure_indexes when they are there with exactly this name and key (ours), never
# any other index.
OBSOLETE_INDEXES = (("created", {"aimCreatedUtc": pymongo.ASCENDING}),)


class DocumentWriteError(Exception):
    """MongoDB refused documents for another reason than a duplicate key; the text holds no document."""


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    duplicates: int


class DocumentStore:
    def __init__(
        self, url: str, database: str, collection: str, write_concern: str = "1", timeout_ms: int = 10000
    ):
        w: int | str = int(write_concern) if write_concern.isdigit() else write_concern
        self.client = pymongo.MongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=timeout_ms,
            appname="flp-aim",
        )
        self.collection = self.client[database].get_collection(
            collection, write_concern=WriteConcern(w=w, wtimeout=timeout_ms)
        )

    @classmethod
    def from_settings(cls, url: str, settings) -> DocumentStore:
        return cls(
            url,
            settings.mongo_database,
            settings.mongo_collection,
            settings.mongo_write_concern,
            settings.mongo_timeout_ms,
        )

    def ensure_indexes(self) -> list[str]:
        """Create our indexes; drop our obsolete ones (returned) if an older version left them."""
        existing = {index["name"]: dict(index["key"]) for index in self.collection.list_indexes()}
        dropped = []
        for name, key in OBSOLETE_INDEXES:
            if existing.get(name) == key:
                self.collection.drop_index(name)
                dropped.append(name)
                log.info(
                    "aim store dropped an obsolete index",
                    extra={"collection": self.collection.full_name, "index": name},
                )
        for keys, name in INDEXES:
            self.collection.create_index(keys, name=name)
        return dropped

    def write(self, documents: list[dict]) -> WriteResult:
        """Insert the documents; those already there count as written."""
        if not documents:
            return WriteResult(0, 0)
        try:
            result = self.collection.insert_many(documents, ordered=False)
            return WriteResult(len(result.inserted_ids), 0)
        except pymongo.errors.BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
            if others or exc.details.get("writeConcernErrors"):
                first = others[0] if others else exc.details["writeConcernErrors"][0]
                # Code and the server's message only: the operation (with its CPR) stays out.
                raise DocumentWriteError(
                    f"MongoDB refused {len(others)} of {len(documents)} documents: "
                    f"code {first.get('code')} {str(first.get('errmsg', ''))[:200]}"
                ) from None
            return WriteResult(int(exc.details.get("nInserted", 0)), len(errors))

    def count(self) -> int:
        return self.collection.count_documents({})

    def close(self) -> None:
        self.client.close()
