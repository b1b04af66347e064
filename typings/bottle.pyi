"""Type stubs for the parts of bottle 0.13 that OPUS uses (bottle ships none).

Checked by mypy (pyproject.toml: mypy_path); only what the code calls is declared, so a
use of anything else is an error that names this file.
"""

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

class MultiDict:
    def keys(self) -> Iterator[str]: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def getall(self, key: str) -> list[Any]: ...
    def allitems(self) -> list[tuple[str, Any]]: ...
    def __contains__(self, key: object) -> bool: ...

class FormsDict(MultiDict):
    def decode(self, encoding: str | None = None) -> FormsDict: ...

class FileUpload:
    file: IO[bytes]
    name: str
    raw_filename: str

class FileDict(MultiDict):
    def allitems(self) -> list[tuple[str, FileUpload]]: ...

class BaseRequest:
    environ: dict[str, Any]
    method: str
    path: str
    url: str
    content_length: int
    content_type: str
    body: IO[bytes]
    query: FormsDict
    query_string: str
    forms: FormsDict
    files: FileDict
    def get_header(self, name: str, default: Any = None) -> Any: ...

class LocalRequest(BaseRequest): ...

class BaseResponse:
    status_code: int
    status_line: str
    body: Any
    content_type: str
    headerlist: list[tuple[str, str]]
    def __init__(
        self,
        body: Any = "",
        status: int | str | None = None,
        headers: Mapping[str, str] | None = None,
        **more_headers: Any,
    ) -> None: ...
    def set_header(self, name: str, value: str) -> None: ...

class LocalResponse(BaseResponse): ...

class HTTPResponse(BaseResponse, Exception): ...

class HTTPError(HTTPResponse):
    exception: BaseException | None
    traceback: str | None

class Route:
    rule: str
    method: str
    app: Bottle
    call: Callable[..., Any]
    def __init__(
        self, app: Bottle, rule: str, method: str, callback: Callable[..., Any], **config: Any
    ) -> None: ...

class Bottle:
    config: dict[str, Any]
    routes: list[Route]
    def __init__(self, **kwargs: Any) -> None: ...
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]: ...
    def install(self, plugin: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Any: ...
    def merge(self, routes: Bottle | list[Route]) -> None: ...
    default_error_handler: Callable[[HTTPError], str]
    def route(
        self, path: str | None = None, method: str | list[str] = "GET", **options: Any
    ) -> Callable[[_F], _F]: ...
    def get(self, path: str | None = None, **options: Any) -> Callable[[_F], _F]: ...
    def post(self, path: str | None = None, **options: Any) -> Callable[[_F], _F]: ...
    def put(self, path: str | None = None, **options: Any) -> Callable[[_F], _F]: ...
    def delete(self, path: str | None = None, **options: Any) -> Callable[[_F], _F]: ...

request: LocalRequest
response: LocalResponse
HTTP_CODES: dict[int, str]

class SimpleTemplate:
    def __init__(
        self,
        source: str | None = None,
        name: str | None = None,
        lookup: list[str] | None = None,
        encoding: str = "utf8",
        **settings: Any,
    ) -> None: ...
    def render(self, *args: Mapping[str, Any], **kwargs: Any) -> str: ...

def static_file(
    filename: str,
    root: str,
    mimetype: str | bool = True,
    download: bool | str = False,
    charset: str = "UTF-8",
    etag: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTTPResponse: ...
