// Start a chat: pick one person for a direct chat (an existing one is reopened), or name a group
// and pick its members.
import { useState } from 'preact/hooks';
import { request } from '../api.ts';
import { CreateChatMutation, type ChatSummary, type User } from '@kocmoc/client/documents';
import { displayName } from '../format.ts';
import { UserSearch } from './UserSearch.tsx';

interface Props {
  me: User;
  report: (error: unknown) => void;
  onCancel: () => void;
  onCreated: (chat: ChatSummary) => void;
}

export function NewChat({ me, report, onCancel, onCreated }: Props) {
  const [kind, setKind] = useState<'DIRECT' | 'GROUP'>('DIRECT');
  const [title, setTitle] = useState('');
  const [members, setMembers] = useState<Map<string, User>>(new Map());

  const create = (memberIds: string[]) =>
    request(CreateChatMutation, { input: kind === 'DIRECT' ? { kind, memberIds } : { kind, memberIds, title: title.trim() } }).then((data) => onCreated(data.createChat), report);

  const pick = (user: User) => {
    if (kind === 'DIRECT') return void create([user.id]);
    setMembers((map) => {
      const next = new Map(map);
      if (!next.delete(user.id)) next.set(user.id, user);
      return next;
    });
  };

  return (
    <div class="panel new-chat-panel">
      <header class="chat-header">
        <button type="button" class="back" onClick={onCancel} aria-label="Back">
          ←
        </button>
        <h2>New chat</h2>
      </header>
      <div class="mode" role="tablist">
        <button type="button" role="tab" aria-selected={kind === 'DIRECT'} onClick={() => setKind('DIRECT')}>
          Direct
        </button>
        <button type="button" role="tab" aria-selected={kind === 'GROUP'} onClick={() => setKind('GROUP')}>
          Group
        </button>
      </div>
      {kind === 'GROUP' && (
        <form
          class="group-form"
          onSubmit={(event) => {
            event.preventDefault();
            void create([...members.keys()]);
          }}
        >
          <label>
            Group name
            <input value={title} maxLength={128} required onInput={(event) => setTitle(event.currentTarget.value)} />
          </label>
          <p class="muted">{members.size ? `Members: ${[...members.values()].map(displayName).join(', ')}` : 'Pick members below.'}</p>
          <button type="submit" class="primary">
            Create group
          </button>
        </form>
      )}
      <p class="muted">{kind === 'DIRECT' ? 'Pick someone to chat with.' : ''}</p>
      <UserSearch me={me} report={report} picked={kind === 'GROUP' ? new Set(members.keys()) : undefined} onPick={pick} />
    </div>
  );
}
