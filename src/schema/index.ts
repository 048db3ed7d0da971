// Every domain registers its types on the builder; importing them here assembles the schema.
import { builder } from './builder.ts';
import './node.ts';
import './users.ts';
import './auth.ts';
import './chats.ts';
import './messages.ts';
import './reactions.ts';
import './mentions.ts';
import './read-state.ts';
import './pins.ts';
import './drafts.ts';
import './files.ts';
import './realtime.ts';
import './contacts.ts';
import './admin.ts';
import './notifications.ts';
import './account.ts';
import './devices.ts';
import './encrypted-messages.ts';
import './calls.ts';
import './search.ts';
import './threads.ts';
import './scheduled.ts';

export const schema = builder.toSchema({ sortSchema: true });
