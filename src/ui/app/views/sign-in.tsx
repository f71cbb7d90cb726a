import { useState } from 'preact/hooks';
import { looksLikeJwt } from '../session.js';

/** Paste a token once; it stays for this tab only (sessionStorage). */
export function SignIn({ notice, onToken }: { notice: string | null; onToken: (token: string) => void }) {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<string | null>(null);
  const submit = (e: Event) => {
    e.preventDefault();
    if (!looksLikeJwt(token)) {
      setProblem('That is not a token: a JWT is three base64url parts separated by dots.');
      return;
    }
    onToken(token.trim());
  };
  return (
    <main class="sign-in" id="main">
      <h1>Sign in to steady</h1>
      {notice && (
        <p class="problem" role="alert">
          {notice}
        </p>
      )}
      <form onSubmit={submit}>
        <label for="token">Token</label>
        <textarea id="token" name="token" rows={4} value={token} onInput={(e) => setToken(e.currentTarget.value)} spellcheck={false} autocomplete="off" required />
        {problem && (
          <p class="problem" role="alert">
            {problem}
          </p>
        )}
        <button type="submit" class="primary">
          Sign in
        </button>
      </form>
      <p class="muted">
        <code>npm start</code> prints a link that signs in at once. Otherwise mint a token with <code>npx steady token --sub NAME</code> (add{' '}
        <code>--role admin</code> to see nodes). It is kept in this tab only.
      </p>
    </main>
  );
}
