import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Session } from "./api";

export const SessionContext = createContext<{ session: Session; refresh: () => void } | null>(null);

/** The signed-in user; only pages behind the sign-in use it. */
export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("no session");
  return s.session;
}
