// Account settings: name, email, password, 2FA. (issue 13: to be written)
export function Account({ me }: { me: string }) {
  void me;
  return <main><h1>Account</h1></main>;
}
