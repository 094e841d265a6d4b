// A virtualised ARIA grid: only the rows in view (and a few around) are in the page,
// so 100,000 runs scroll like 100. Rows come from a callback that may not have them
// yet (they load by window); keyboard: arrows, Page Up/Down, Home/End, Enter, Space.
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useReducer, useRef, useState } from "preact/hooks";
import {
  Virtualizer,
  elementScroll,
  observeElementOffset,
  observeElementRect,
} from "@tanstack/virtual-core";

export const ROW_HEIGHT = 32;

export interface Column<Row> {
  id: string;
  label: string;
  width: number;
  sortable?: boolean;
  numeric?: boolean;
  render: (row: Row) => ComponentChildren;
}

export interface GridProps<Row> {
  label: string;
  columns: Column<Row>[];
  total: number;
  rowAt: (index: number) => Row | undefined;
  rowKey: (row: Row) => string;
  onRange: (start: number, end: number) => void;
  sort: { id: string; descending: boolean } | null;
  onSort: (id: string) => void;
  onOpen: (row: Row) => void;
  isSelected: (row: Row) => boolean;
  onToggle: (row: Row) => void;
}

function useVirtualizer(count: number, element: () => HTMLElement | null) {
  const [, rerender] = useReducer((x: number) => x + 1, 0);
  const virtualizer = useRef<Virtualizer<HTMLElement, Element> | null>(null);
  const options = {
    count,
    getScrollElement: element,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    observeElementRect,
    observeElementOffset,
    scrollToFn: elementScroll,
    onChange: () => rerender(0),
  };
  if (!virtualizer.current) virtualizer.current = new Virtualizer(options);
  virtualizer.current.setOptions(options);
  useLayoutEffect(() => virtualizer.current!._didMount(), []);
  useLayoutEffect(() => virtualizer.current!._willUpdate());
  return virtualizer.current;
}

export function Grid<Row>(props: GridProps<Row>) {
  const scroller = useRef<HTMLDivElement>(null);
  const virtualizer = useVirtualizer(props.total, () => scroller.current);
  const [active, setActive] = useState(0);
  const items = virtualizer.getVirtualItems();
  const first = items.length ? items[0].index : 0;
  const last = items.length ? items[items.length - 1].index : 0;
  useEffect(() => {
    if (props.total) props.onRange(first, last + 1);
  }, [first, last, props.total, props.onRange]);
  useEffect(() => {
    if (active >= props.total) setActive(Math.max(0, props.total - 1));
  }, [props.total]);

  const width = props.columns.reduce((sum, c) => sum + c.width, 0);
  const template = props.columns.map((c) => `${c.width}px`).join(" ");
  const move = (index: number) => {
    const next = Math.max(0, Math.min(props.total - 1, index));
    setActive(next);
    virtualizer.scrollToIndex(next, { align: "auto" });
  };
  const keydown = (event: KeyboardEvent) => {
    if ((event.target as HTMLElement) !== scroller.current) return;
    const page = Math.max(1, Math.floor((scroller.current?.clientHeight ?? 320) / ROW_HEIGHT) - 1);
    const row = props.rowAt(active);
    switch (event.key) {
      case "ArrowDown":
        move(active + 1);
        break;
      case "ArrowUp":
        move(active - 1);
        break;
      case "PageDown":
        move(active + page);
        break;
      case "PageUp":
        move(active - page);
        break;
      case "Home":
        move(0);
        break;
      case "End":
        move(props.total - 1);
        break;
      case "Enter":
        if (row) props.onOpen(row);
        break;
      case " ":
        if (row) props.onToggle(row);
        break;
      default:
        return;
    }
    event.preventDefault();
  };
  const activeRow = props.rowAt(active);
  return (
    <div
      class="grid"
      role="grid"
      aria-label={props.label}
      aria-rowcount={props.total + 1}
      aria-colcount={props.columns.length}
      aria-multiselectable="true"
      tabIndex={0}
      ref={scroller}
      onKeyDown={keydown}
      aria-activedescendant={activeRow ? `row-${props.rowKey(activeRow)}` : undefined}
    >
      <div class="grid-inner" style={{ width: `${width}px` }}>
        <div class="grid-header" role="row" aria-rowindex={1} style={{ gridTemplateColumns: template }}>
          {props.columns.map((column, index) => {
            const sorted = props.sort?.id === column.id;
            return (
              <div
                role="columnheader"
                aria-colindex={index + 1}
                aria-sort={sorted ? (props.sort!.descending ? "descending" : "ascending") : undefined}
                class={column.numeric ? "num" : ""}
                title={column.label}
              >
                {column.sortable ? (
                  <button type="button" class="sort" onClick={() => props.onSort(column.id)}>
                    {column.label}
                    {sorted ? (props.sort!.descending ? " ▼" : " ▲") : ""}
                  </button>
                ) : (
                  column.label
                )}
              </div>
            );
          })}
        </div>
        <div class="grid-body" style={{ height: `${virtualizer.getTotalSize()}px` }}>
          {items.map((item) => {
            const row = props.rowAt(item.index);
            const selected = row ? props.isSelected(row) : false;
            return (
              <div
                key={item.index}
                role="row"
                id={row ? `row-${props.rowKey(row)}` : undefined}
                aria-rowindex={item.index + 2}
                aria-selected={selected}
                class={`grid-row${item.index === active ? " active" : ""}${selected ? " selected" : ""}`}
                style={{ transform: `translateY(${item.start}px)`, gridTemplateColumns: template }}
                onClick={() => setActive(item.index)}
                onDblClick={() => row && props.onOpen(row)}
              >
                {row
                  ? props.columns.map((column, index) => (
                      <div role="gridcell" aria-colindex={index + 1} class={column.numeric ? "num" : ""}>
                        {column.render(row)}
                      </div>
                    ))
                  : (
                      <div role="gridcell" aria-colindex={1} class="placeholder">
                        loading…
                      </div>
                    )}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
