// Log in with a token: the server checks it and keeps it in an HttpOnly cookie, so no
// script on the page can read it.
import { useState } from "preact/hooks";
import { request } from "../api";
import { ErrorLine } from "../ui";

export function LoginPage() {
  const [token, setToken] = useState("");
  const [error, setError] = useState<Error | null>(null);
  const submit = (event: Event) => {
    event.preventDefault();
    request<{ ok: boolean; error?: string; project?: string }>("/api/v1/hub/login", {
      method: "POST",
      body: JSON.stringify({ token }),
    }).then(
      (who) => {
        if (!who.ok) {
          setError(new Error(who.error ?? "the token was refused"));
          return;
        }
        setToken("");
        // A fresh page load: every view starts from the new session, none from the old.
        const next = new URLSearchParams(location.search).get("next");
        location.assign(next && next.startsWith("/p/") ? next : `/p/${encodeURIComponent(who.project ?? "default")}/runs`);
      },
      (failure: Error) => setError(failure),
    );
  };
  return (
    <main id="main" class="login">
      <h1>lockstep hub</h1>
      <form onSubmit={submit} aria-labelledby="login-title">
        <h2 id="login-title">Log in</h2>
        <label>
          Token <input type="password" autocomplete="current-password" value={token} required onInput={(e) => setToken((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit">Log in</button>
        <ErrorLine error={error} />
        <p class="muted">An admin makes tokens with lockstep server token create.</p>
      </form>
    </main>
  );
}
