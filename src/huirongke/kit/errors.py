"""Domain errors carry their HTTP status and code; one set of handlers renders the API.md body."""

from __future__ import annotations

import errno
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from huirongke.kit.middleware import route_template

log = structlog.get_logger(__name__)


class AppError(Exception):
    status = 400
    code = "bad_request"
    message = "请求有误"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.code)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its attributes, whatever the subclass's __init__ takes: an error raised in a
        # worker process (kit/workers.py) reaches the request with its status, code and message.
        return (_rebuild_error, (type(self), dict(self.__dict__)))


def _rebuild_error(cls: type[AppError], state: dict[str, Any]) -> AppError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("code"))
    error.__dict__.update(state)
    return error


class BadRequest(AppError):
    pass


class Invalid(AppError):
    status = 422
    code = "validation_error"
    message = "提交的内容不符合要求"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    message = "请先登录"


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    message = "没有权限执行此操作"


class NotFound(AppError):
    status = 404
    code = "not_found"
    message = "找不到该对象"


class Conflict(AppError):
    status = 409
    code = "conflict"
    message = "操作与当前状态冲突"


class TooLarge(AppError):
    status = 413
    code = "file_too_large"
    message = "文件过大"


class UnsupportedMedia(AppError):
    status = 415
    code = "unsupported_media_type"
    message = "不支持的文件类型"


class PreconditionRequired(AppError):
    status = 428
    code = "consent_required"
    message = "需要您的同意"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    message = "操作过于频繁，请稍后再试"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        retry_after = max(1, int(retry_after))
        super().__init__(
            message, details={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)}
        )


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


class ErrorDetail(BaseModel):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="snake_case error code")
    message: str = Field(description="可读的说明 (Simplified Chinese)")
    details: dict[str, Any]


class ErrorBody(BaseModel):
    """The one error body of every API error (API.md, "Conventions")."""

    error: ErrorDetail


# The statuses any API operation may answer with the error body: bad input, no or bad token, the
# gates (403 guardian/step-up, 428 policy/consent), a missing object, a conflict, a body too large
# or too slow to arrive (kit/limits.py), rate limits, and a busy database or full disk. 415 belongs
# to the upload routes only; a 500 is a bug and is not documented.
COMMON_ERROR_STATUSES = (400, 401, 403, 404, 408, 409, 413, 422, 428, 429, 503)
_DESCRIPTIONS = {
    400: "请求有误",
    401: "未登录或登录已失效",
    403: "没有权限",
    404: "对象不存在",
    408: "请求内容未能及时送达",
    409: "与当前状态冲突",
    413: "请求内容或文件过大",
    415: "不支持的文件类型",
    422: "提交的内容不符合要求",
    428: "需要同意隐私政策或授权",
    429: "操作过于频繁（见 Retry-After）",
    503: "服务繁忙、存储暂不可用或尚未就绪（见 Retry-After）",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for these error statuses, each with the API.md error body."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses}


_STATUS_CODES = {
    400: ("bad_request", "请求有误"),
    401: ("unauthorized", "请先登录"),
    403: ("forbidden", "没有权限执行此操作"),
    404: ("not_found", "找不到该对象"),
    405: ("method_not_allowed", "不支持该请求方法"),
    406: ("not_acceptable", "无法提供所请求的格式"),
    408: ("request_timeout", "请求超时，请检查网络后重试"),
    413: ("payload_too_large", "请求内容过大"),
    415: ("unsupported_media_type", "不支持的内容类型"),
}


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    fields = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        # Never echo the submitted value back: it may be personal data.
        fields.append({"field": ".".join(loc) or "body", "type": err.get("type", "invalid")})
    return {"fields": fields}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        if any(f["type"] == "json_invalid" for f in details["fields"]):
            return JSONResponse(error_body("malformed_json", "请求内容不是有效的 JSON", {}), status_code=400)
        return JSONResponse(error_body("validation_error", "提交的内容不符合要求", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = _STATUS_CODES.get(exc.status_code, ("http_error", "请求无法完成"))
        code = getattr(exc, "error_code", code)  # kit/limits.py names its own
        message = getattr(exc, "error_message", message)
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(DataError)
    async def _db_data(request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value (e.g. a NUL byte PostgreSQL cannot store): bad input, not a bug.
        log.warning(
            "database_rejected_value", error_type=type(exc.orig).__name__, path=route_template(request.scope)
        )
        return JSONResponse(error_body("invalid_input", "提交的内容包含无法处理的字符"), status_code=400)

    @app.exception_handler(OperationalError)
    async def _db_operational(request: Request, exc: OperationalError) -> JSONResponse:
        if storage_fault(exc):
            return _storage_unavailable(request, exc)
        if "locked" in str(exc.orig).lower() or "deadlock" in str(exc.orig).lower():
            # Contention, not a bug: nothing was written, and trying again shortly will work.
            log.warning("database_busy", path=route_template(request.scope))
            return JSONResponse(
                error_body("busy", "系统繁忙，请稍后重试"), status_code=503, headers={"Retry-After": "1"}
            )
        log.error("database_error", error_type=type(exc.orig).__name__, path=route_template(request.scope))
        return JSONResponse(error_body("internal_error", "服务器开小差了，请稍后再试"), status_code=500)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if storage_fault(exc):
            return _storage_unavailable(request, exc)
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if storage_fault(exc):  # e.g. a DBAPIError other than OperationalError wrapping a full disk
            return _storage_unavailable(request, exc)
        log.error("unhandled_error", error_type=type(exc).__name__, path=route_template(request.scope))
        return JSONResponse(error_body("internal_error", "服务器开小差了，请稍后再试"), status_code=500)


# --- storage faults ----------------------------------------------------------------------------------

STORAGE_RETRY_AFTER = 30
_FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG}
_SQLITE_FAULTS = ("database or disk is full", "readonly database", "disk i/o error")
# PostgreSQL: 53100 disk_full, 53200 out_of_memory, 25006 read_only_sql_transaction (a standby or
# `default_transaction_read_only`), 57P03 cannot_connect_now (starting up, recovering).
_PG_FAULTS = {"53100", "53200", "25006", "57P03"}


def storage_fault(exc: BaseException) -> bool:
    """Whether `exc` says the disk is full or the database/filesystem is read-only: the service cannot
    store anything right now, through no fault of the request. Nothing was committed by the failing
    request, and trying again once the operator has made room will work."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_OR_READ_ONLY:
            return True
        orig = getattr(current, "orig", None)
        if orig is not None:
            if getattr(orig, "sqlstate", None) in _PG_FAULTS:
                return True
            if any(text in str(orig).lower() for text in _SQLITE_FAULTS):
                return True
            if isinstance(orig, OSError) and orig.errno in _FULL_OR_READ_ONLY:
                return True
        current = current.__cause__ or current.__context__
    return False


def _storage_unavailable(request: Request, exc: BaseException) -> JSONResponse:
    log.error("storage_unavailable", error_type=type(exc).__name__, path=route_template(request.scope))
    return JSONResponse(
        error_body(
            "storage_unavailable",
            "服务器存储暂时不可用，您的数据没有丢失，请稍后重试",
            {"retry_after": STORAGE_RETRY_AFTER},
        ),
        status_code=503,
        headers={"Retry-After": str(STORAGE_RETRY_AFTER)},
    )
