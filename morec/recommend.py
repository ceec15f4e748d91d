"""Recommend with a trained model: the serving-side object behind `morec recommend`, `export` and `serve`.

A :class:`RecommenderService` holds what answering needs and nothing of training:

* the item table: every item's output vector (what user vectors are scored against), computed once;
* for sequence backbones, every item's encoder vector (a history's input) and the user encoder (the
  backbone); for DSSM, the user tower;
* item ids and titles, user ids and their sequences (to recommend for a known user and exclude what
  they already have);
* for a MoRec model loaded from its run directory, the trained item encoder, so new items can be
  added from their content while serving (:meth:`add_items`).

Top-K is exact (one matrix-vector product over the catalogue) unless a faiss index is asked for.
Answers read an immutable snapshot of the catalogue; adding items builds a new one and swaps it in,
so recommendations never see a half-added batch. The run directory's catalogue file is the truth
shared with other processes (`morec catalog add`, other servers): additions go through its lock
(:func:`morec.catalog.append_added`), and a change made by someone else is picked up before the
next answer (:meth:`RecommenderService.refresh`).
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from .catalog import (AddedItems, CatalogError, ContentEncoder, append_added, cannot_add_reason, catalog_signature,
                      map_columns, normalize_items, own_columns, read_added, resolve_images, weights_fingerprint)
from .backbones import build_backbone
from .checkpoint import atomic_save_tensors, atomic_write_text
from .config import Config, from_dict, to_dict
from .runs import load_run
from .tempfiles import remove_stale

EXPORT_FORMAT = "morec-export"
EXPORT_VERSION = 1


class ServingError(ValueError):
    """A request that cannot be answered as asked; ``status`` is the HTTP status `morec serve` answers."""

    status = 422


class UnknownItemsError(ServingError):
    pass


class UnknownUserError(ServingError):
    pass


def did_you_mean(unknown: list[str], known: dict[str, int]) -> str:
    """A hint naming the known ids that the unknown ones equal up to surrounding spaces or Unicode normalisation
    (never used in their place: an answer is for the id asked), or ''."""
    import unicodedata

    def form(text: str) -> str:
        return unicodedata.normalize("NFC", text.strip())

    wanted = {form(u): u for u in unknown[:10]}
    near = [f"{wanted[form(k)]!r} is not {k!r}" for k in known if form(k) in wanted and k not in unknown][:5]
    return f" (ids are matched exactly: {', '.join(near)})" if near else ""


@dataclass(frozen=True)
class ItemSnapshot:
    """The catalogue at one moment. Row i = item index i; row 0 = padding (never recommended)."""

    ids: list[str]  # ids[0] = "" (padding)
    titles: list
    index: dict[str, int]
    inputs: torch.Tensor | None  # (N + 1, d) encoder vectors (history inputs); None for user-id backbones
    outputs: torch.Tensor  # (N + 1, d) scored against user vectors
    n_trained: int  # items 1..n_trained come from training; the rest were added from content

    @property
    def n_items(self) -> int:
        return len(self.ids) - 1


def _titles_of(items: pd.DataFrame, column: str | None = "title") -> list:
    if column is None or column not in items.columns:
        return [None] * len(items)
    return [None if (t is None or (isinstance(t, float) and np.isnan(t)) or str(t).strip() == "") else str(t)
            for t in items[column].tolist()]


class RecommenderService:
    def __init__(self, cfg: Config, backbone: torch.nn.Module, snapshot: ItemSnapshot, user_ids: list[str],
                 user_offsets: np.ndarray, user_items: np.ndarray, content: ContentEncoder | None = None,
                 cannot_add: str | None = None, run_dir: Path | None = None, fingerprint: str | None = None,
                 index: str = "exact", source: str = "", added_signature: tuple | None = None,
                 id_column: str | None = None, title_column: str | None = "title", image_column: str | None = None):
        self.cfg = cfg
        self.backbone = backbone.eval()
        self.uses_history = bool(getattr(backbone, "uses_history", True))
        self.max_len = cfg.model.max_len
        self._snap = snapshot
        self.user_ids = user_ids
        self.user_index = {u: i for i, u in enumerate(user_ids)}
        self.user_offsets, self.user_items = user_offsets, user_items
        self.content = content
        self.cannot_add = cannot_add
        self.run_dir, self.fingerprint = run_dir, fingerprint
        self.source = source
        self._added_signature = added_signature
        # the dataset's own names of its item id and title columns (e.g. book_sku, book_title): new items may use them
        self.id_column, self.title_column = id_column, title_column
        if content is not None:
            content.image_column = image_column
        self._lock = threading.Lock()
        self._device = snapshot.outputs.device
        if index not in ("exact", "faiss", "auto"):
            raise ValueError(f"index must be exact, faiss or auto, not {index!r}")
        self._faiss = None
        if index == "faiss" or (index == "auto" and snapshot.n_items >= 100_000):
            self._faiss = FaissIndex.maybe(snapshot.outputs, required=index == "faiss")
        self.index_kind = "faiss" if self._faiss is not None else "exact"

    # --- loading -------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", index: str = "exact") -> "RecommenderService":
        """A run directory (`morec train --out`) or an export directory (`morec export --out`)."""
        path = Path(path)
        manifest = path / "manifest.json"
        if manifest.exists() and json.loads(manifest.read_text(encoding="utf-8")).get("format") == EXPORT_FORMAT:
            return cls.from_export(path, device, index)
        return cls.from_run(path, device, index)

    @classmethod
    @torch.no_grad()
    def from_run(cls, run_dir: str | Path, device: str = "cpu", index: str = "exact") -> "RecommenderService":
        run = Path(run_dir)
        cfg, model, dataset = load_run(run, device)
        remove_stale(run)
        inputs = model.encode_all_items().float()
        outputs = model.backbone.item_output(inputs).float()
        ids = [""] + [str(i) for i in dataset.items["item"].tolist()]
        titles = [None] + dataset.titles()
        fingerprint = weights_fingerprint(run)
        added = read_added(run, fingerprint)
        added_ids, added_titles, added_vecs = added.ids, added.titles, added.vectors
        if added_vecs is not None:
            added_vecs = added_vecs.to(device)
            ids, titles = ids + added_ids, titles + added_titles
            inputs = torch.cat([inputs, added_vecs])
            outputs = torch.cat([outputs, model.backbone.item_output(added_vecs).float()])
        uses_history = model.backbone.uses_history
        snap = ItemSnapshot(ids, titles, {x: i for i, x in enumerate(ids) if i}, inputs if uses_history else None,
                            outputs, dataset.n_items)
        reason = cannot_add_reason(cfg)
        content = None
        if reason is None:
            try:
                content = ContentEncoder(model.item_encoder, cfg)
            except CatalogError as err:
                reason = str(err)
        if content is None:
            model.item_encoder = None  # not needed for answering: free it
        users = [str(u) for u in dataset.users["user"].tolist()]
        return cls(cfg, model.backbone, snap, users, dataset.offsets.astype(np.int64),
                   np.asarray(dataset.items_flat).astype(np.int64), content, reason, run, fingerprint, index,
                   source=str(run), added_signature=added.signature, id_column=dataset.item_id_column,
                   title_column=dataset.title_column, image_column=dataset.manifest.get("image_column"))

    @classmethod
    def from_export(cls, export_dir: str | Path, device: str = "cpu", index: str = "exact") -> "RecommenderService":
        d = Path(export_dir)
        man = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        if man.get("version", 0) > EXPORT_VERSION:
            raise ServingError(f"{d} is a newer export format (version {man['version']}) than this morec reads ({EXPORT_VERSION})")
        cfg = from_dict(Config, man["config"])
        tensors = load_file(str(d / "items.safetensors"), device=device)
        users = man["users"]
        stub = SimpleNamespace(n_users=len(users), n_items=man["n_trained_items"])
        backbone = build_backbone(cfg.model, stub)
        backbone.load_state_dict(load_file(str(d / "user_encoder.safetensors"), device=device))
        backbone.to(device)
        ids = [""] + man["items"]
        titles = [None] + man["titles"]
        outputs = tensors["outputs"] if "outputs" in tensors else tensors["inputs"]
        snap = ItemSnapshot(ids, titles, {x: i for i, x in enumerate(ids) if i}, tensors.get("inputs"), outputs,
                            man["n_trained_items"])
        reason = ("this is an export: it holds item vectors but no item encoder, so items cannot be added to it. "
                  "Add them to the run directory (`morec catalog add RUN_DIR`) and export again")
        return cls(cfg, backbone, snap, users, tensors["user_offsets"].cpu().numpy(),
                   tensors["user_items"].cpu().numpy(), None, reason, None, man.get("weights"), index, source=str(d),
                   id_column=man.get("id_column"), title_column=man.get("title_column", "title"))

    # --- facts ---------------------------------------------------------------------------------
    @property
    def snapshot(self) -> ItemSnapshot:
        self.refresh()
        return self._snap

    @property
    def n_items(self) -> int:
        return self.snapshot.n_items

    def refresh(self) -> bool:
        """Pick up items that other processes added to the run's catalogue file since we last read it
        (one stat per call when nothing changed). Returns True if the catalogue changed."""
        if self.run_dir is None or catalog_signature(self.run_dir) == self._added_signature:
            return False
        if not self._lock.acquire(blocking=False):  # an addition here is under way and will install it
            return False
        try:
            if catalog_signature(self.run_dir) == self._added_signature:
                return False
            self._install(read_added(self.run_dir, self.fingerprint))
        finally:
            self._lock.release()
        return True

    @torch.inference_mode()
    def _install(self, added: AddedItems) -> None:
        """Make the snapshot hold exactly the trained items plus ``added`` (the catalogue file); call with
        the lock held. Items already in the snapshot keep their rows; only new ones are run through the
        item tower."""
        snap, n0 = self._snap, self._snap.n_trained + 1
        current = snap.ids[n0:]
        if added.ids[:len(current)] == current:  # the usual case: the file grew
            keep, new = len(snap.ids), added.ids[len(current):]
        else:  # replaced or shrunk (deleted, re-added): rebuild the added part
            keep, new = n0, added.ids
        vecs = added.vectors[len(added.ids) - len(new):].to(self._device) if new else None
        ids, titles = snap.ids[:keep] + list(new), snap.titles[:keep] + added.titles[len(added.ids) - len(new):]
        inputs, outputs = (snap.inputs[:keep] if snap.inputs is not None else None), snap.outputs[:keep]
        if vecs is not None:
            outs = self.backbone.item_output(vecs).float()
            inputs = torch.cat([inputs, vecs]) if inputs is not None else None
            outputs = torch.cat([outputs, outs])
        self._snap = ItemSnapshot(ids, titles, {x: i for i, x in enumerate(ids) if i}, inputs, outputs, snap.n_trained)
        self._added_signature = added.signature
        if self._faiss is not None:
            if keep == len(snap.ids):
                if vecs is not None:
                    self._faiss.add(outs)
            else:
                self._faiss = FaissIndex.maybe(outputs, required=True)

    @property
    def can_add_items(self) -> bool:
        return self.content is not None and self.run_dir is not None

    def info(self) -> dict:
        s = self.snapshot
        return {"status": "ok", "items": s.n_items, "trained_items": s.n_trained, "added_items": s.n_items - s.n_trained,
                "users": len(self.user_ids), "backbone": self.cfg.model.backbone, "encoder": self.cfg.model.encoder.kind,
                "input": "history" if self.uses_history else "user", "max_len": self.max_len,
                "can_add_items": self.can_add_items, "index": self.index_kind, "source": self.source,
                "item_fields": self.item_fields()}

    def item_fields(self) -> dict:
        """What a new item needs (POST /items, catalog add): its id column and the content fields the model reads."""
        ids = ["id", "item"] + ([self.id_column] if self.id_column and self.id_column not in ("id", "item") else [])
        content = self.content.fields if self.content is not None else []
        return {"id": ids, "content": content, "title": self.title_column}

    # --- recommending --------------------------------------------------------------------------
    def item_indices(self, items: list, snap: ItemSnapshot | None = None) -> np.ndarray:
        snap = snap or self._snap
        keys = [str(x) for x in items]  # exactly as asked: ' i1' is not 'i1'
        unknown = [k for k in keys if k not in snap.index]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:10]) + (f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else "")
            raise UnknownItemsError(f"unknown item id(s): {shown}; the catalogue has {snap.n_items} items "
                                    "(ids as in the training data, or added with catalog add / POST /items)"
                                    + did_you_mean(unknown, snap.index))
        return np.array([snap.index[k] for k in keys], dtype=np.int64)

    def user_sequence(self, user) -> np.ndarray:
        key = str(user)  # exactly as asked: ' u1' is not 'u1'
        if key not in self.user_index:
            raise UnknownUserError(f"unknown user id {key!r}; {len(self.user_ids)} users are known (ids as in the "
                                   "training data)" + did_you_mean([key], self.user_index))
        u = self.user_index[key]
        return self.user_items[self.user_offsets[u]:self.user_offsets[u + 1]]

    @torch.inference_mode()
    def user_vector(self, user=None, history: np.ndarray | None = None, snap: ItemSnapshot | None = None) -> torch.Tensor:
        """The user's vector (d,) from a user id (DSSM) or item indices (sequence backbones)."""
        snap = snap or self._snap
        if not self.uses_history:
            u = torch.tensor([self.user_index[str(user)]], device=self._device)
            return self.backbone.user_vectors(None, None, u)[0].float()
        hist = torch.from_numpy(np.ascontiguousarray(history[-self.max_len:])).to(self._device)[None]
        vectors = snap.inputs[hist]
        return self.backbone.user_vectors(vectors, hist > 0, torch.zeros(1, dtype=torch.long, device=self._device))[0].float()

    @torch.inference_mode()
    def recommend(self, user=None, history: list | None = None, k: int = 10, exclude_history: bool = True) -> dict:
        """Top-``k`` items for a known ``user`` id or for a ``history`` of item ids (oldest first), the
        history excluded. Returns {"items": [{"id", "title", "score"}...], "history_length": n}."""
        if (user is None) == (history is None):
            raise ServingError("give exactly one of user (a known user id) or history (a list of item ids)")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ServingError(f"k must be a positive integer, got {k!r}")
        snap = self.snapshot  # one consistent catalogue for the whole answer
        if history is not None:
            if not self.uses_history:
                raise ServingError(f"this {self.cfg.model.backbone} model reads a user id, not a history: its user "
                                   "vector is a learned embedding of a user seen in training. Ask with user=<id>, "
                                   "or use a sequence model (sasrec, gru4rec, nextitnet, bert4rec) to recommend for a history")
            if len(history) == 0:
                raise ServingError("history is empty; give at least one item id")
            seq = self.item_indices(history, snap)
        else:
            seq = self.user_sequence(user)
        vec = self.user_vector(user, seq, snap)
        exclude = np.unique(seq) if exclude_history else np.zeros(0, dtype=np.int64)
        n_candidates = snap.n_items - len(exclude)
        k = min(k, n_candidates)
        if k <= 0:
            return {"items": [], "history_length": int(len(seq))}
        if self._faiss is not None:
            idx, scores = self._faiss.search(vec, k, exclude)
        else:
            scores_all = snap.outputs @ vec  # (N + 1,)
            scores_all[0] = float("-inf")
            if len(exclude):
                scores_all[torch.from_numpy(exclude).to(scores_all.device)] = float("-inf")
            top = torch.topk(scores_all, k)
            idx, scores = top.indices.cpu().numpy(), top.values.cpu().numpy()
        items = [{"id": snap.ids[i], "title": snap.titles[i], "score": float(s) if np.isfinite(s) else None}
                 for i, s in zip(idx.tolist(), scores.tolist())]
        return {"items": items, "history_length": int(len(seq))}

    # --- adding items ----------------------------------------------------------------------------
    def add_items(self, items: pd.DataFrame | list[dict], columns: dict[str, str] | None = None,
                  base: Path | None = None) -> list[str]:
        """Encode new items from their content and add them to the run directory's catalogue file (one
        transaction under its lock, so concurrent additions by other processes are kept) and to this
        service's catalogue, which then also holds whatever others added meanwhile. Returns the added ids.

        Items name their id ``id``, ``item`` or the dataset's own id column (e.g. ``book_sku``) and their
        text and images by the dataset's column names; ``columns`` renames others first ({"sku": "book_sku"}).
        Relative image paths are read under ``base`` (the items file's folder), when given."""
        if self.content is None or self.run_dir is None:
            raise CatalogError(self.cannot_add or "this model cannot add items")
        df = pd.DataFrame(items) if not isinstance(items, pd.DataFrame) else items
        df = resolve_images(own_columns(map_columns(df, columns), self.content.image_column), base)
        with self._lock:  # one addition at a time in this process; answers go on with the old snapshot
            snap = self._snap
            df = normalize_items(df, snap.index, self.id_column)  # early, clear refusal; the transaction checks again
            self.content.check(df)
            vecs = self.content(df)
            new_ids = df["item"].tolist()
            trained = dict(zip(snap.ids[1:snap.n_trained + 1], range(1, snap.n_trained + 1)))
            titles = [t if t is not None else i for t, i in zip(_titles_of(df, self.title_column), new_ids)]  # a label
            added = append_added(self.run_dir, new_ids, titles, vecs, self.fingerprint, trained)
            self._install(added)
        return new_ids

    # --- export ----------------------------------------------------------------------------------
    def export(self, out_dir: str | Path) -> Path:
        """Write the item table, the user encoder and a manifest to ``out_dir``: loadable with
        :meth:`load` (or `morec recommend` / `serve`) without the training data or the item encoder."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        snap = self.snapshot
        tensors = {"user_offsets": torch.from_numpy(np.ascontiguousarray(self.user_offsets, dtype=np.int64)),
                   "user_items": torch.from_numpy(np.ascontiguousarray(self.user_items, dtype=np.int64))}
        if snap.inputs is not None:
            tensors["inputs"] = snap.inputs.cpu()
        if snap.inputs is None or not torch.equal(snap.inputs, snap.outputs):
            tensors["outputs"] = snap.outputs.cpu()
        atomic_save_tensors(tensors, out / "items.safetensors")
        atomic_save_tensors({k: v.detach().cpu() for k, v in self.backbone.state_dict().items()},
                            out / "user_encoder.safetensors")
        manifest = {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "source": self.source,
                    "weights": self.fingerprint, "backbone": self.cfg.model.backbone,
                    "encoder": self.cfg.model.encoder.kind, "dim": int(snap.outputs.shape[1]),
                    "input": "history" if self.uses_history else "user", "max_len": self.max_len,
                    "n_trained_items": snap.n_trained, "n_items": snap.n_items, "config": to_dict(self.cfg),
                    "items": snap.ids[1:], "titles": snap.titles[1:], "users": self.user_ids,
                    "id_column": self.id_column, "title_column": self.title_column}
        atomic_write_text(out / "manifest.json", json.dumps(manifest))
        return out


class FaissIndex:
    """Optional approximate top-K over the item table (inner product, HNSW), for large catalogues.
    Used only when faiss is importable; excluded items are filtered after an enlarged search."""

    def __init__(self, faiss, outputs: torch.Tensor):
        self.faiss = faiss
        self.index = faiss.IndexHNSWFlat(outputs.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        self.index.add(np.ascontiguousarray(outputs[1:].float().cpu().numpy()))  # faiss id j = item j + 1

    @classmethod
    def maybe(cls, outputs: torch.Tensor, required: bool) -> "FaissIndex | None":
        try:
            import faiss
        except ImportError:
            if required:
                raise ServingError("index=faiss needs the faiss package (pip install faiss-cpu); "
                                   "index=exact needs nothing") from None
            return None
        return cls(faiss, outputs)

    def add(self, outputs: torch.Tensor) -> None:
        self.index.add(np.ascontiguousarray(outputs.float().cpu().numpy()))

    def search(self, vec: torch.Tensor, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        want = min(k + len(exclude), self.index.ntotal)
        scores, ids = self.index.search(vec.float().cpu().numpy()[None], want)
        items = ids[0] + 1
        keep = (ids[0] >= 0) & ~np.isin(items, exclude)
        return items[keep][:k], scores[0][keep][:k]


def recommend(run_dir: str | Path, user=None, history: list | None = None, k: int = 10, device: str = "cpu") -> dict:
    """Top-K for a user id or a history of item ids from a run or export directory."""
    return RecommenderService.load(run_dir, device).recommend(user=user, history=history, k=k)


def export(run_dir: str | Path, out_dir: str | Path, device: str = "cpu") -> Path:
    return RecommenderService.from_run(run_dir, device).export(out_dir)
