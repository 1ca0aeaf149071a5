// Completes an email verification: the mail links here with ?tenant=…&token=….
import { call, clearProblem, linkParameters, showProblem, tenantPath } from "./api.js";

const $ = (id) => document.getElementById(id);
const { tenant, token } = linkParameters($("problem"), $("tenant"), $("back"));

$("verify-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  clearProblem($("problem"));
  try {
    await call("POST", `${tenantPath(tenant)}/auth/verify-email`, { body: { token } });
    $("verify-form").hidden = true;
    $("done").textContent = "Your email is verified. You can log in on the demo page.";
  } catch (error) {
    showProblem($("problem"), error);
  }
});
