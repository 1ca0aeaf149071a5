// Completes a password reset: the mail links here with ?tenant=…&token=….
import { call, clearProblem, showProblem, tenantPath } from "./api.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const tenant = params.get("tenant") ?? "";
const token = params.get("token") ?? "";
$("tenant").textContent = tenant || "(none)";
$("back").href = `/demo/?tenant=${encodeURIComponent(tenant)}`;
if (!tenant || !token) {
  showProblem($("problem"), new Error("This link lacks its tenant or token: open the link from the reset mail."));
}

$("reset-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearProblem($("problem"));
  try {
    await call("POST", `${tenantPath(tenant)}/auth/password-reset/confirm`, {
      body: { token, new_password: $("new-password").value },
    });
    $("reset-form").hidden = true;
    $("done").textContent = "Password changed, and every session of the account has ended. Log in again on the demo page.";
  } catch (error) {
    showProblem($("problem"), error);
  }
});
