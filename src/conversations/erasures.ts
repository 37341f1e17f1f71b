/** The users erased recently (core/recent-erasures.ts): the turns and state events ask it before they write. */
export { RecentErasures } from "../core/recent-erasures.ts";
