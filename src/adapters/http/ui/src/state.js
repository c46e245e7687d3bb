// What the page knows between views: the session (role, CSRF token), the
// latest live snapshot and how it arrives, and the view on screen.

export const app = {
  session: null,
  live: null,
  liveMode: "connecting",
  view: null,
};
