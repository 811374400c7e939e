"""HentCDA, Hent værdier i CDA and DDS on-demand: care plans as DK-CPD documents (docs/cda.md).

Modules: data (the one set-based read, ``Api.care_plan_read``, as dataclasses),
builder (the lxml DK-CPD document), versions (content hash, setId,
versionNumber, RPLC: ``Api.cda_version_register``), reader (values and
diagnoses from any producer's DK-CPD document), schema (the SDTC XSD),
access (the keyed patient hash and the access log).
"""
