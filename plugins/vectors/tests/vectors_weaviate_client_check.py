"""Checks the test Weaviate with the official ``weaviate-client`` 4, in a venv of its own.

``weaviate-client`` 4 pins older grpcio, protobuf and httpx than the sidecar's, so it cannot be
in the test extra: ``scripts/setup --test`` installs it (with aiohttp) into
``.venv/side/weaviate``, and ``test_vectors_weaviate_client.py`` runs this script with that
venv's Python, from this directory; by hand::

    ../../../.venv/side/weaviate/bin/python vectors_weaviate_client_check.py

It drives the REST and GraphQL endpoints the plugin uses (the client sends writes and plain
queries over gRPC, which the test server does not speak): creating a collection, reading its
config, and GraphQL ``Get`` with ``nearVector``, ``where`` and ``_additional``, as the plugin
sends them; the client must parse every answer, and its errors must be Weaviate's.
"""

from __future__ import annotations

import weaviate
from vectors_fake_store import ServedInThread
from vectors_fake_weaviate import WEAVIATE_TEST_KEY, FakeWeaviate
from weaviate.classes.init import Auth
from weaviate.exceptions import UnexpectedStatusCodeError, WeaviateQueryError

QUERY = (
    "{Get{Docs(nearVector:{vector:[1.0,0.1,0.0]},limit:2,where:{operator:And,operands:["
    '{operator:Equal,path:["genre"],valueText:"drama"},'
    '{operator:GreaterThanEqual,path:["year"],valueInt:2000}]})'
    "{sidecarId genre year _additional{id distance vector}}}}"
)


def main() -> None:
    with ServedInThread(FakeWeaviate()) as fake:
        client = weaviate.connect_to_custom(
            http_host="127.0.0.1",
            http_port=fake.port,
            http_secure=False,
            grpc_host="127.0.0.1",
            grpc_port=9,  # never used: the calls below are REST and GraphQL
            grpc_secure=False,
            auth_credentials=Auth.api_key(WEAVIATE_TEST_KEY),
            skip_init_checks=True,
        )
        try:
            client.collections.create_from_dict(
                {
                    "class": "Docs",
                    "vectorizer": "none",
                    "vectorIndexConfig": {"distance": "cosine"},
                    "properties": [
                        {"name": "genre", "dataType": ["text"]},
                        {"name": "year", "dataType": ["int"]},
                        {"name": "sidecarId", "dataType": ["text"]},
                    ],
                }
            )
            config = client.collections.get("Docs").config.get()
            assert config.vector_index_config is not None
            print("schema:", config.name, config.vector_index_config.distance_metric,
                  [(p.name, p.data_type) for p in config.properties])  # fmt: skip
            objects = fake.classes["Docs"]["objects"]
            for i, (genre, year, vector) in enumerate(
                [("drama", 2001, [1.0, 0.0, 0.0]), ("comedy", 2010, [0.0, 1.0, 0.0])]
            ):
                oid = f"00000000-0000-0000-0000-00000000000{i}"
                properties = {"genre": genre, "year": year, "sidecarId": f"r{i}"}
                objects[oid] = {"id": oid, "vector": vector, "properties": properties}
            got = client.graphql_raw_query(QUERY)
            print("graphql:", got.get, got.errors)
            assert got.errors is None and got.get["Docs"][0]["sidecarId"] == "r0"
            bad = client.graphql_raw_query(QUERY.replace("valueInt:2000", 'valueText:"2000"'))
            print("graphql error:", bad.errors)
            assert bad.errors is not None
            try:
                client.collections.create_from_dict({"class": "Docs"})
            except UnexpectedStatusCodeError as e:  # Weaviate's answer to a class that exists
                print("rest error:", e.status_code, str(e)[:120])
            else:
                raise SystemExit("creating an existing class was not refused")
        except WeaviateQueryError as e:
            raise SystemExit(f"the client refused an answer: {e}") from e
        finally:
            client.close()
    print("ok")


if __name__ == "__main__":
    main()
