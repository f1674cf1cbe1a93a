"""A test Weaviate on 127.0.0.1: the REST and GraphQL endpoints the vectors plugin uses, as
Weaviate documents them.

``GET /v1/meta``, ``GET/POST /v1/schema``, ``GET /v1/schema/{class}``, ``GET /v1/objects``
(``class``, ``limit``, ``include=vector``), ``POST /v1/batch/objects`` (an upsert; each object's
result, with its own ``errors``), ``DELETE /v1/batch/objects`` (``match.where``), ``POST
/v1/graphql`` (``Get`` with ``nearVector``, ``limit``, ``where`` and ``_additional {id distance
certainty vector}``). The key is ``Authorization: Bearer``. Errors are Weaviate's: REST
``{"error": [{"message"}]}``, GraphQL ``{"data": {...: null}, "errors": [{"message", ...}]}``
with status 200. ``where`` is strict as Weaviate is: an unknown property or a ``value*`` of the
wrong type is an error. Auto-schema adds properties on write (strings ``text``, numbers
``number``, booleans ``boolean``). Distances: cosine ``1 - cos``, dot ``-dot``, l2-squared.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from vectors_fake_graphql import EnumValue, Field, GraphQLSyntaxError, parse
from vectors_fake_store import FakeStore, cosine, dot, is_number, squared_l2
from vectors_fake_weaviate_schema import class_json

WEAVIATE_TEST_KEY = "wv-test-key-00000000000000000000"
VALUE_KEYS = {
    "valueText": "text",
    "valueInt": "int",
    "valueNumber": "number",
    "valueBoolean": "boolean",
    "valueTextArray": "text",
    "valueIntArray": "int",
    "valueNumberArray": "number",
}


class WhereError(Exception):
    pass


def rest_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": [{"message": message}]}, status=status)


class FakeWeaviate(FakeStore):
    def __init__(self, api_key: str = WEAVIATE_TEST_KEY) -> None:
        super().__init__(api_key)
        #: class → {"distance", "properties": {name: type}, "objects": {uuid: object}}
        self.classes: dict[str, dict[str, Any]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/meta", self._meta)
        app.router.add_get("/v1/schema", self._schema_all)
        app.router.add_post("/v1/schema", self._schema_create)
        app.router.add_get("/v1/schema/{name}", self._schema_one)
        app.router.add_get("/v1/objects", self._objects)
        app.router.add_post("/v1/batch/objects", self._batch)
        app.router.add_delete("/v1/batch/objects", self._batch_delete)
        app.router.add_post("/v1/graphql", self._graphql)

    def create_class(
        self, name: str, distance: str = "cosine", properties: dict[str, str] | None = None
    ) -> None:
        self.classes[name] = {
            "distance": distance,
            "properties": dict(properties or {}),
            "objects": {},
        }

    def clear(self) -> None:
        self.classes.clear()
        self.reset()

    def _refused(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return web.json_response(
                {"code": 401, "message": "anonymous access not enabled, please provide an auth "
                 "scheme such as OIDC"}, status=401)  # fmt: skip
        if auth[7:] != self.api_key:
            return web.json_response({"code": 401, "message": "unauthorized"}, status=401)
        return None

    def _class_json(self, name: str) -> dict[str, Any]:
        c = self.classes[name]
        return class_json(name, c["distance"], c["properties"])

    async def _meta(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"hostname": "http://[::]:8080", "modules": {}, "version": "1.28.0"}
        )

    async def _schema_all(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        return web.json_response({"classes": [self._class_json(n) for n in self.classes]})

    async def _schema_create(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        name = body.get("class", "")
        if name in self.classes:
            return rest_error(422, f"class name {name!r} already exists")
        props = {p["name"]: p["dataType"][0] for p in body.get("properties", [])}
        distance = (body.get("vectorIndexConfig") or {}).get("distance", "cosine")
        self.create_class(name, distance, props)
        return web.json_response(self._class_json(name))

    async def _schema_one(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        name = request.match_info["name"]
        if name not in self.classes:
            return web.Response(status=404)
        return web.json_response(self._class_json(name))

    def _object_json(self, name: str, obj: dict[str, Any], vector: bool) -> dict[str, Any]:
        out = {"class": name, "id": obj["id"], "properties": obj["properties"]}
        out["creationTimeUnix"] = out["lastUpdateTimeUnix"] = 1700000000000
        if vector:
            out["vector"] = obj["vector"]
        return out

    async def _objects(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        name = request.query.get("class", "")
        if name not in self.classes:
            return rest_error(422, f"class {name} not found in schema")
        limit = int(request.query.get("limit", "25"))
        vector = "vector" in request.query.get("include", "")
        objs = list(self.classes[name]["objects"].values())[:limit]
        return web.json_response(
            {
                "objects": [self._object_json(name, o, vector) for o in objs],
                "totalResults": len(objs),
            }
        )

    def _dimension(self, name: str) -> int | None:
        for o in self.classes[name]["objects"].values():
            return len(o["vector"])
        return None

    async def _batch(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        results = []
        for obj in body.get("objects", []):
            name = obj.get("class", "")
            if name not in self.classes:
                self.create_class(name)  # auto-schema
            c = self.classes[name]
            errors = None
            try:
                uuid.UUID(obj.get("id", ""))
            except ValueError:
                errors = {"error": [{"message": f"invalid UUID {obj.get('id')!r}"}]}
            dim = self._dimension(name)
            vector = obj.get("vector") or []
            if errors is None and dim is not None and len(vector) != dim:
                message = (f"new node has a vector with length {len(vector)}. "
                           f"Existing nodes have vectors with length {dim}")  # fmt: skip
                errors = {"error": [{"message": message}]}
            props = obj.get("properties") or {}
            for k, v in props.items():
                kind = (
                    "text" if isinstance(v, str) else "boolean" if isinstance(v, bool) else "number"
                )
                have = c["properties"].setdefault(k, kind)
                if errors is None and have != kind and not (have == "int" and is_number(v)):
                    errors = {"error": [{"message": f"invalid {have} property '{k}' on class "
                              f"'{name}': requires a {have}, got {type(v).__name__}"}]}  # fmt: skip
            if errors is None:
                c["objects"][obj["id"]] = {"id": obj["id"], "properties": props, "vector": vector}
            results.append({**self._object_json(name, {**obj, "vector": vector}, True),
                            "result": {"errors": errors} if errors else {}})  # fmt: skip
        return web.json_response(results)

    async def _batch_delete(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        match = body.get("match") or {}
        name = match.get("class", "")
        if name not in self.classes:
            return rest_error(422, f"class {name} not found in schema")
        try:
            gone = [k for k, o in self.classes[name]["objects"].items()
                    if self._where(name, o, match.get("where"))]  # fmt: skip
        except WhereError as e:
            return rest_error(422, str(e))
        for k in gone:
            del self.classes[name]["objects"][k]
        results = {"matches": len(gone), "limit": 10000, "successful": len(gone), "failed": 0}
        return web.json_response(
            {"match": match, "output": body.get("output", "minimal"), "dryRun": False,
             "results": results})  # fmt: skip

    def _where(self, name: str, obj: dict[str, Any], where: dict[str, Any] | None) -> bool:
        if not where:
            return True
        op = where.get("operator")
        op = op.name if isinstance(op, EnumValue) else op
        if op in ("And", "Or"):
            parts = [self._where(name, obj, w) for w in where.get("operands", [])]
            return all(parts) if op == "And" else any(parts)
        path = where.get("path") or []
        prop = path[0] if path else ""
        kind = self.classes[name]["properties"].get(prop)
        if kind is None:
            raise WhereError(f"no such prop with name '{prop}' found in class '{name}' in the "
                             "schema. Check your schema files for which properties in this "
                             "class are available")  # fmt: skip
        keys = [k for k in where if k.startswith("value")]
        if len(keys) != 1:
            raise WhereError("exactly one value must be set")
        key = keys[0]
        if VALUE_KEYS.get(key) != kind:
            raise WhereError(f'data type filter cannot use "{key}" on type "{kind}"')
        value = where[key]
        have = obj["properties"].get(prop)
        if have is None:
            return False
        if op == "ContainsAny":
            return have in value if isinstance(value, list) else False
        if key.endswith("Array"):
            raise WhereError(f"{key} only works with ContainsAny/ContainsAll")
        if op == "Equal":
            return bool(have == value)
        if op == "NotEqual":
            return bool(have != value)
        compare = {"GreaterThan": have > value, "GreaterThanEqual": have >= value,
                   "LessThan": have < value, "LessThanEqual": have <= value}  # fmt: skip
        if op not in compare:
            raise WhereError(f"unrecognized operator: {op}")
        return bool(compare[op])

    def distance(self, name: str, a: list[float], b: list[float]) -> float:
        metric = self.classes[name]["distance"]
        if metric == "cosine":
            return 1.0 - cosine(a, b)
        if metric == "dot":
            return -dot(a, b)
        return squared_l2(a, b)

    async def _graphql(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        body = await request.json()
        try:
            [get] = parse(body.get("query", ""))
            if get.name != "Get" or len(get.fields) != 1:
                raise GraphQLSyntaxError("only one Get { Class } is served here")
            [cls] = get.fields
        except (GraphQLSyntaxError, ValueError) as e:
            return web.json_response({"data": None, "errors": [{"message": str(e)}]})
        try:
            return web.json_response({"data": {"Get": {cls.name: self._get(cls)}}})
        except WhereError as e:
            return web.json_response(
                {"data": {"Get": {cls.name: None}},
                 "errors": [{"locations": [{"column": 6, "line": 1}], "message": str(e),
                             "path": ["Get", cls.name]}]})  # fmt: skip

    def _get(self, cls: Field) -> list[dict[str, Any]]:
        name = cls.name
        if name not in self.classes:
            raise WhereError(f'Cannot query field "{name}" on type "GetObjectsObj".')
        props = self.classes[name]["properties"]
        for f in cls.fields:
            if f.name != "_additional" and f.name not in props:
                raise WhereError(f'Cannot query field "{f.name}" on type "{name}".')
        near = cls.args.get("nearVector")
        objs = [o for o in self.classes[name]["objects"].values()
                if self._where(name, o, cls.args.get("where"))]  # fmt: skip
        scored = []
        for o in objs:
            d = None
            if near is not None:
                vector = near.get("vector") or []
                if len(vector) != len(o["vector"]):
                    raise WhereError(f"vector search: knn search: distance between entrypoint "
                                     f"and query node: vector lengths don't match: "
                                     f"{len(o['vector'])} vs {len(vector)}")  # fmt: skip
                d = self.distance(name, vector, o["vector"])
            scored.append((d, o))
        if near is not None:
            scored.sort(key=lambda s: s[0])
        limit = cls.args.get("limit")
        out = []
        for d, o in scored[: limit if isinstance(limit, int) else 10_000]:
            item: dict[str, Any] = {}
            for f in cls.fields:
                if f.name == "_additional":
                    more: dict[str, Any] = {}
                    for a in f.fields:
                        if a.name == "id":
                            more["id"] = o["id"]
                        elif a.name == "distance":
                            more["distance"] = d
                        elif a.name == "certainty":
                            more["certainty"] = None if d is None else 1 - d / 2
                        elif a.name == "vector":
                            more["vector"] = o["vector"]
                    item["_additional"] = more
                else:
                    item[f.name] = o["properties"].get(f.name)
            out.append(item)
        return out
