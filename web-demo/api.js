// Calls to the latch server that served this page, and how its
// problem+json errors are shown. Shared by the demo and the reset page.

/** A non-2xx answer; `problem` is the server's problem+json body. */
export class ProblemError extends Error {
  constructor(problem, status) {
    super(problem.title ?? `HTTP ${status}`);
    this.problem = problem;
    this.status = status;
  }
}

/** `method path` with an optional JSON body and bearer token; the JSON answer, or null for 202/204. */
export async function call(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (response.headers.get("content-type") ?? "").includes("json");
  const data = json ? await response.json() : null;
  if (!response.ok) throw new ProblemError(data ?? {}, response.status);
  return data;
}

/** Shows an error in `element`: the server's problem title and detail, or the message. */
export function showProblem(element, error) {
  element.hidden = false;
  if (error instanceof ProblemError) {
    const { title, detail, code } = error.problem;
    element.textContent = `${title ?? `HTTP ${error.status}`}${detail ? `: ${detail}` : ""}${code ? ` (${code})` : ""}`;
  } else {
    element.textContent = String(error?.message ?? error);
  }
}

/** Hides the error area. */
export function clearProblem(element) {
  element.hidden = true;
  element.textContent = "";
}

/** The path prefix of a tenant's endpoints. */
export const tenantPath = (tenant) => `/t/${encodeURIComponent(tenant)}`;

/**
 * The `tenant` and `token` of a mailed link's page; names the tenant in
 * `tenantElement`, points `backLink` at the demo for it, and says so in
 * `problemElement` when the link lacks either.
 */
export function linkParameters(problemElement, tenantElement, backLink) {
  const params = new URLSearchParams(location.search);
  const tenant = params.get("tenant") ?? "";
  const token = params.get("token") ?? "";
  tenantElement.textContent = tenant || "(none)";
  backLink.href = `/demo/?tenant=${encodeURIComponent(tenant)}`;
  if (!tenant || !token) {
    showProblem(problemElement, new Error("This link lacks its tenant or token: open the link from the mail."));
  }
  return { tenant, token };
}
