/** Shard 1 of the NIP-47 event fuzz (nwc-events.ts says what it shows). */
import { describeEventFuzz } from './nwc-events.ts';

describeEventFuzz(1, 2);
