// In-memory state shared by the screens (never persisted).

export const state = {
  me: null, // the last GET/PATCH /me answer
};

export function rememberMe(me) {
  state.me = me;
  return me;
}

export function forgetMe() {
  state.me = null;
}
