// One message: who, what (text, photo thumbnail, file link, location, a call), its reply, and the
// actions its viewer may take.
import type { Message, User } from '@kocmoc/client/documents';
import { bytes, callText, displayName, timeOf } from '../format.ts';
import { Icon } from './Icon.tsx';

interface Props {
  message: Message;
  me: User;
  showSender: boolean;
  canDelete: boolean;
  onReply: (message: Message) => void;
  onEdit: (message: Message) => void;
  onDelete: (message: Message) => void;
}

function Content({ message, mine }: { message: Message; mine: boolean }) {
  const { attachment, location, call } = message;
  if (message.deletedAt) return <p class="deleted muted">Message deleted</p>;
  if (call) {
    const missed = !mine && call.state === 'ENDED' && call.durationSeconds == null;
    return (
      <p class={`call-entry ${missed ? 'missed' : ''}`} data-testid="call-entry">
        <Icon name="phone" /> {callText(call, mine)}
      </p>
    );
  }
  return (
    <>
      {attachment?.thumbnailUrl && (
        <a href={attachment.url} target="_blank" rel="noopener" class="photo">
          <img src={attachment.thumbnailUrl} alt={attachment.name} width={attachment.width ?? undefined} height={attachment.height ?? undefined} loading="lazy" />
        </a>
      )}
      {attachment && !attachment.thumbnailUrl && (
        <a href={attachment.url} download={attachment.name} class="file">
          <Icon name="attach" /> {attachment.name} <span class="muted">({bytes(attachment.size)})</span>
        </a>
      )}
      {location && (
        <a class="location" target="_blank" rel="noopener" href={`https://www.openstreetmap.org/?mlat=${location.latitude}&mlon=${location.longitude}#map=16/${location.latitude}/${location.longitude}`}>
          <Icon name="pin" /> {location.latitude.toFixed(5)}, {location.longitude.toFixed(5)}
        </a>
      )}
      {message.text && <p class="text">{message.text}</p>}
    </>
  );
}

export function MessageItem({ message, me, showSender, canDelete, onReply, onEdit, onDelete }: Props) {
  const mine = message.sender.id === me.id;
  const { replyTo } = message;
  return (
    <li class={`message ${mine ? 'mine' : 'theirs'}`} data-id={message.id} data-seq={message.seq} data-mine={mine || undefined}>
      <div class="bubble">
        {showSender && !mine && <span class="sender">{displayName(message.sender)}</span>}
        {replyTo && (
          <blockquote class="reply-quote">
            <strong>{displayName(replyTo.sender)}</strong> {replyTo.deletedAt ? 'Message deleted' : (replyTo.text ?? 'Attachment')}
          </blockquote>
        )}
        <Content message={message} mine={mine} />
        <span class="stamp muted">
          {message.editedAt && !message.deletedAt ? 'edited · ' : ''}
          {timeOf(message.createdAt)}
        </span>
      </div>
      {!message.deletedAt && (
        <div class="actions">
          {message.kind !== 'CALL' && (
            <button type="button" onClick={() => onReply(message)}>
              Reply
            </button>
          )}
          {mine && message.kind !== 'LOCATION' && message.kind !== 'CALL' && (
            <button type="button" onClick={() => onEdit(message)}>
              Edit
            </button>
          )}
          {(mine || canDelete) && (
            <button type="button" onClick={() => onDelete(message)}>
              Delete
            </button>
          )}
        </div>
      )}
    </li>
  );
}
