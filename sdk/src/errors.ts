/** Every failed call surfaces as this: the API's `{code, message, errors?}` with the HTTP status
 * (0 when the request never got an answer: `code` is then `network_error`). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly errors: Array<Record<string, unknown>>;

  constructor(status: number, code: string, message: string, errors: Array<Record<string, unknown>> = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.errors = errors;
  }

  /** The error an API response body describes (or a generic one when the body is not ours). */
  static fromResponse(status: number, body: unknown): ApiError {
    if (body && typeof body === "object" && typeof (body as { code?: unknown }).code === "string") {
      const { code, message, errors } = body as { code: string; message?: unknown; errors?: unknown };
      return new ApiError(
        status,
        code,
        typeof message === "string" ? message : code,
        Array.isArray(errors) ? (errors as Array<Record<string, unknown>>) : [],
      );
    }
    return new ApiError(status, `http_${status}`, `HTTP ${status}`);
  }
}

/** A socket action answered with an `error` frame (its `code` is the REST error's code), or could
 * not be sent (`not_connected`, `socket_closed`, `timeout`). */
export class SocketActionError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "SocketActionError";
    this.code = code;
  }
}
