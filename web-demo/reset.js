// Completes a password reset: the mail links here with ?tenant=…&token=….
import { call, clearProblem, linkParameters, showProblem, tenantPath } from "./api.js";

const $ = (id) => document.getElementById(id);
const { tenant, token } = linkParameters($("problem"), $("tenant"), $("back"));

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
