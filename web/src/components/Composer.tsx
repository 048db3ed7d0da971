// Writing: text (Enter sends, Shift+Enter is a new line), a reply or an edit in progress, a file or
// photo, the current location. Typing is signalled while there is text, refreshed every few
// seconds (the server lets a signal lapse after TYPING_TTL), and stopped on send.
import { useEffect, useRef, useState } from 'preact/hooks';
import { request } from '../api.ts';
import { EditMessageMutation, SendMessageMutation, SetTypingMutation, UploadFileMutation, type Message } from '@kocmoc/client/documents';
import { displayName } from '../format.ts';
import type { VariablesOf } from '@kocmoc/client/documents';
import { Icon } from './Icon.tsx';

interface Props {
  chatId: string;
  replyTo: Message | null;
  editing: Message | null;
  onCancel: () => void;
  onSent: (message: Message) => void;
  report: (error: unknown) => void;
  /** For typing signals: quiet while the connection banner shows. */
  reportQuietly: (error: unknown) => void;
}

type SendInput = Omit<VariablesOf<typeof SendMessageMutation>['input'], 'chatId'>;

const TYPING_REFRESH_MS = 3_000;
const TYPING_IDLE_MS = 5_000;

/** An id that makes a retried send idempotent (crypto.randomUUID needs a secure context). */
const clientMessageId = () => globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random().toString(36).slice(2)}`;

export function Composer({ chatId, replyTo, editing, onCancel, onSent, report, reportQuietly }: Props) {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState<string>();
  const typingSentAt = useRef(0);
  // One signal after the other, so a stop never overtakes its start.
  const typingQueue = useRef<Promise<unknown>>(Promise.resolve());
  const idleTimer = useRef<ReturnType<typeof setTimeout>>();
  const input = useRef<HTMLTextAreaElement>(null);

  // An edit starts from its message's text, and leaving it (saved or cancelled) empties the box.
  // Picking a reply keeps the draft, and what was typed since the click (this runs after a paint).
  const editingId = useRef<string | null>(null);
  useEffect(() => {
    const id = editing?.id ?? null;
    if (id !== editingId.current) setText(editing?.text ?? '');
    editingId.current = id;
    input.current?.focus();
  }, [editing, replyTo]);

  const setTyping = (isTyping: boolean) => {
    clearTimeout(idleTimer.current);
    if (isTyping) idleTimer.current = setTimeout(() => setTyping(false), TYPING_IDLE_MS);
    const typing = typingSentAt.current > 0;
    // A start is refreshed every few seconds while typing goes on; a stop is sent once.
    if (isTyping ? typing && Date.now() - typingSentAt.current < TYPING_REFRESH_MS : !typing) return;
    typingSentAt.current = isTyping ? Date.now() : 0;
    typingQueue.current = typingQueue.current.then(() => request(SetTypingMutation, { chatId, isTyping })).catch(reportQuietly);
  };
  useEffect(() => () => typingSentAt.current > 0 && setTyping(false), []); // eslint-disable-line react-hooks/exhaustive-deps

  const send = async (input: SendInput) => {
    setBusy('Sending…');
    try {
      onSent(await sendMessage(input));
      return true;
    } catch (error) {
      report(error);
      return false;
    } finally {
      setBusy(undefined);
    }
  };
  const sendMessage = async (input: SendInput) =>
    (await request(SendMessageMutation, { input: { chatId, clientMessageId: clientMessageId(), replyToId: replyTo?.id, ...input } })).sendMessage;

  const submit = async () => {
    const body = text.trim();
    if (!body) return;
    setTyping(false);
    if (editing) {
      setBusy('Saving…');
      try {
        onSent((await request(EditMessageMutation, { id: editing.id, text: body })).editMessage);
        setText('');
        onCancel();
      } catch (error) {
        report(error);
      } finally {
        setBusy(undefined);
      }
      return;
    }
    if (await send({ kind: 'TEXT', text: body })) {
      setText('');
      onCancel();
    }
  };

  const attach = async (file: File) => {
    const kind = file.type.startsWith('image/') ? 'IMAGE' : 'FILE';
    setBusy(`Uploading ${file.name}…`);
    try {
      const { uploadFile } = await request(UploadFileMutation, { file, kind });
      const caption = text.trim();
      if (await send({ kind, attachmentId: uploadFile.id, text: caption || undefined })) {
        setText('');
        onCancel();
      }
    } catch (error) {
      report(error);
      setBusy(undefined);
    }
  };

  const shareLocation = () => {
    if (!navigator.geolocation) return report(new Error('This browser cannot tell your location.'));
    setBusy('Finding your location…');
    navigator.geolocation.getCurrentPosition(
      ({ coords }) => void send({ kind: 'LOCATION', location: { latitude: coords.latitude, longitude: coords.longitude } }),
      (error) => {
        setBusy(undefined);
        report(new Error(`Your location is not available: ${error.message || 'permission denied'}.`));
      },
      { timeout: 15_000 },
    );
  };

  return (
    <form
      class="composer"
      onSubmit={(event) => {
        event.preventDefault();
        void submit();
      }}
    >
      {(replyTo || editing) && (
        <div class="context">
          {editing ? 'Editing your message' : `Replying to ${displayName(replyTo!.sender)}: ${replyTo!.text ?? 'attachment'}`}
          <button type="button" onClick={onCancel} aria-label="Cancel">
            ×
          </button>
        </div>
      )}
      {busy && <div class="busy muted">{busy}</div>}
      <div class="row">
        {!editing && (
          <>
            <label class="icon-button" title="Send a photo or file">
              <Icon name="attach" />
              <input
                type="file"
                aria-label="Attach a photo or file"
                onChange={(event) => {
                  const file = event.currentTarget.files?.[0];
                  event.currentTarget.value = '';
                  if (file) void attach(file);
                }}
              />
            </label>
            <button type="button" class="icon-button" title="Share your location" aria-label="Share your location" onClick={shareLocation}>
              <Icon name="pin" />
            </button>
          </>
        )}
        <textarea
          ref={input}
          rows={1}
          aria-label="Message"
          placeholder="Write a message"
          maxLength={4000}
          value={text}
          onInput={(event) => {
            const value = event.currentTarget.value;
            setText(value);
            if (!editing) setTyping(value.trim() !== '');
          }}
          onKeyDown={(event) => {
            if (event.key === 'Enter' && !event.shiftKey) {
              event.preventDefault();
              void submit();
            }
            if (event.key === 'Escape') onCancel();
          }}
        />
        <button type="submit" class="primary" disabled={!!busy || !text.trim()}>
          {editing ? 'Save' : 'Send'}
        </button>
      </div>
    </form>
  );
}
