import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';

/**
 * A button that asks first, in a modal <dialog> (focus stays inside it, Escape cancels, focus goes
 * back to the button after). "Cancel" has the focus, so Enter never destroys anything by accident.
 */
export function ConfirmButton(props: {
  label: string;
  question: ComponentChildren;
  confirmLabel?: string;
  danger?: boolean;
  disabled?: boolean;
  onConfirm: () => Promise<unknown> | void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const confirm = async () => {
    setBusy(true);
    try {
      await props.onConfirm();
    } finally {
      setBusy(false);
      dialog.current?.close();
    }
  };
  return (
    <>
      <button type="button" class={props.danger ? 'danger' : ''} disabled={props.disabled || busy} onClick={() => dialog.current?.showModal()}>
        {props.label}
      </button>
      <dialog ref={dialog} aria-label={props.label}>
        <p>{props.question}</p>
        <div class="actions">
          <button type="button" autofocus onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="button" class={props.danger ? 'danger' : 'primary'} disabled={busy} onClick={() => void confirm()}>
            {props.confirmLabel ?? props.label}
          </button>
        </div>
      </dialog>
    </>
  );
}
