#!/usr/bin/env python3
"""
Writes a differential corpus for excise's dataset readers: parquet files written by pyarrow and by
Hugging Face `datasets`, jsonl / jsonl.gz / txt files and folders, each with the documents a strict
reference reader returns (pyarrow for parquet, Python's json module for jsonl), or the error it
refuses the file with. scripts/check-dataset-corpus.ts (and test/datasets.diff.test.ts on the
committed small corpus) reads every case with loadDataset and compares document by document.

    python3 scripts/dataset-corpus.py OUT [--cases N] [--seed S] [--small]

The reference semantics, which excise documents (README "Datasets"):
  * parquet: pq.read_table(file).column(field).to_pylist(), None and "" skipped; a file with two
    columns of that name is refused (pyarrow refuses it); a value that is not valid UTF-8 (a binary
    column) is skipped and counted.
  * jsonl: lines split on "\n", a trailing "\r" dropped, a UTF-8 BOM dropped from the first line;
    a line of JSON whitespace only (space, tab) is blank and skipped; any other line must be a JSON
    object (json.loads, NaN/Infinity refused) whose field is a string, null or "" (skipped), else
    the file is refused at that line. A line that is not valid UTF-8 but parses is skipped and counted.
  * txt (and source files): the whole file, a leading BOM dropped; not valid UTF-8: skipped and counted.
  * folders: files in code-unit order of their relative paths, hidden entries ignored.
Needs pyarrow and datasets.
"""
import gzip
import json
import os
import random
import shutil
import sys

import pyarrow as pa
import pyarrow.parquet as pq

BOM = b'\xef\xbb\xbf'

EDGE_TEXTS = [
    'plain ascii text', '\ufeffstarts with a BOM', '\ufeff', 'ends with BOM\ufeff', 'tab\tand\nnewline\r\nCRLF',
    'emoji 😀👩‍👩‍👧 flags 🇫🇷', 'combining e\u0301 and \u0308', 'rtl \u202e reversed \u202c', 'nul \x00 inside',
    'line sep \u2028 para sep \u2029', 'nbsp\u00a0ideographic\u3000space', '\u00a0', '\u3000', ' ', '  \t ',
    'zero width \u200b\u200c\u200d joiner', 'high plane \U00010348 \U0010fffd', 'quotes " \' \\ backslash',
    '{"looks": "like json"}', '\x7f delete \x1b[31m escape', '中文文本，标点。', 'ελληνικά', 'नमस्ते', 'x' * 3000,
]


def rand_text(rng, max_len):
    pools = ['abcdefghijklmnopqrstuvwxyz     \n', 'àéîõüßçñ', 'αβγδ', '中文字', '😀🎉', '\t"\\/{}[]', '\u200b\u2028\ufeff']
    n = rng.randint(1, max_len)
    out = []
    while len(out) < n:
        pool = rng.choice(pools)
        out.extend(rng.choice(pool) for _ in range(rng.randint(1, 12)))
    return ''.join(out[:n])


def texts_for(rng, n, max_len, with_edges=True, with_empty=True):
    texts = [rand_text(rng, max_len) for _ in range(n)]
    if with_edges:
        for t in rng.sample(EDGE_TEXTS, min(len(EDGE_TEXTS), rng.randint(3, 10))):
            texts.insert(rng.randint(0, len(texts)), t)
    if with_empty:
        for v in ('', None):
            if rng.random() < 0.5:
                texts.insert(rng.randint(0, len(texts)), v)
    return texts


def present(values):
    return [v for v in values if v is not None and v != '']


class Corpus:
    def __init__(self, root):
        self.root = root
        self.cases = []
        os.makedirs(os.path.join(root, 'cases'), exist_ok=True)

    def path(self, name):
        return os.path.join(self.root, 'cases', name)

    def add(self, name, path, expect, options=None):
        case = {'name': name, 'path': os.path.relpath(path, self.root), 'expect': expect}
        if options:
            case['options'] = options
        self.cases.append(case)

    def write(self):
        with open(os.path.join(self.root, 'reference.json'), 'w', encoding='utf-8') as f:
            json.dump({'cases': self.cases}, f, ensure_ascii=False, separators=(',', ':'))


# ------------------------------------------------------------------------------------------------
# parquet

def parquet_reference(path, field='text'):
    table = pq.read_table(path)
    names = table.column_names
    if names.count(field) != 1:
        raise ValueError('column count')
    values = table.column(field).to_pylist()
    docs, skipped = [], 0
    for v in values:
        if isinstance(v, bytes):
            try:
                v = v.decode('utf-8')
            except UnicodeDecodeError:
                skipped += 1
                continue
        if v is None or v == '':
            continue
        docs.append(v)
    return docs, skipped


def parquet_cases(c, rng, n_cases, small):
    compressions = ['NONE', 'SNAPPY', 'GZIP', 'ZSTD', 'BROTLI', 'LZ4']
    for i in range(n_cases):
        comp = compressions[i % len(compressions)]
        texts = texts_for(rng, rng.randint(1, 40), 200 if small else 2000)
        string_type = rng.choice([pa.string(), pa.large_string()] + ([] if small else [pa.string_view()] if hasattr(pa, 'string_view') else []))
        field = rng.choice(['text', 'text', 'content'])
        columns = {field: pa.array(texts, type=string_type)}
        if rng.random() < 0.6:
            columns['id'] = pa.array(list(range(len(texts))), type=pa.int64())
        if rng.random() < 0.3:
            columns['meta'] = pa.array([{'k': j} for j in range(len(texts))])
        if rng.random() < 0.2:
            columns['__proto__'] = pa.array([str(j) for j in range(len(texts))])
        table = pa.table(columns)
        kwargs = dict(
            compression=comp,
            use_dictionary=rng.random() < 0.5,
            data_page_version=rng.choice(['1.0', '2.0']),
            row_group_size=rng.choice([1, 3, 7, 1000]),
            data_page_size=rng.choice([64, 1024, 1 << 20]),
        )
        if rng.random() < 0.3:
            kwargs['column_encoding'] = {field: rng.choice(['PLAIN', 'DELTA_BYTE_ARRAY', 'DELTA_LENGTH_BYTE_ARRAY'])}
            kwargs['use_dictionary'] = False
        path = c.path(f'pq-{i:03d}-{comp.lower()}.parquet')
        try:
            pq.write_table(table, path, **kwargs)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            kwargs.pop('column_encoding', None)
            pq.write_table(table, path, **kwargs)
        docs, skipped = parquet_reference(path, field)
        c.add(f'parquet {i} {comp} {kwargs}', path, {'docs': docs, 'skipped': skipped}, {'textField': field} if field != 'text' else None)

    # only a BOM, a BOM-led value, a __proto__ text column, binary with invalid UTF-8, two "text" columns
    path = c.path('pq-bom.parquet')
    pq.write_table(pa.table({'text': ['\ufeffabc', '\ufeff', 'abc\ufeff', '\ufeff\ufeffx']}), path)
    c.add('parquet BOM values', path, {'docs': parquet_reference(path)[0], 'skipped': 0})
    path = c.path('pq-proto.parquet')
    pq.write_table(pa.table({'__proto__': ['p1', 'p2'], 'text': ['t1', 't2']}), path)
    c.add('parquet __proto__ column', path, {'docs': ['p1', 'p2'], 'skipped': 0}, {'textField': '__proto__'})
    c.add('parquet beside __proto__', path, {'docs': ['t1', 't2'], 'skipped': 0})
    path = c.path('pq-binary-invalid.parquet')
    pq.write_table(pa.table({'text': pa.array([b'ok', b'\xff\xfe bad', b'', None, b'caf\xc3\xa9', b'\xc3'], type=pa.binary())}), path)
    docs, skipped = parquet_reference(path)
    c.add('parquet binary column with invalid UTF-8', path, {'docs': docs, 'skipped': skipped})
    path = c.path('pq-dup-text.parquet')
    schema = pa.schema([pa.field('text', pa.string()), pa.field('text', pa.string())])
    pq.write_table(pa.Table.from_arrays([pa.array(['a']), pa.array(['b'])], schema=schema), path)
    try:
        pq.read_table(path).column('text')
        raise SystemExit('pyarrow read a file with two "text" columns')
    except (KeyError, pa.ArrowInvalid):
        pass
    c.add('parquet two text columns', path, {'error': 'ERR_DATASET_INVALID', 'at': 'two columns'})
    if not small:
        path = c.path('pq-1mb.parquet')
        big = [rand_text(rng, 1) * 0 + ''.join(rng.choice('abc é中😀\n') for _ in range(1 << 20)) for _ in range(3)]
        pq.write_table(pa.table({'text': big}), path, compression='ZSTD')
        c.add('parquet 1 MB texts', path, {'docs': big, 'skipped': 0})


def datasets_cases(c, rng, n_cases, small):
    import datasets
    datasets.disable_progress_bars()
    for i in range(n_cases):
        texts = texts_for(rng, rng.randint(1, 30), 200 if small else 1500)
        data = {'text': texts, 'id': list(range(len(texts)))}
        ds = datasets.Dataset.from_dict(data)
        path = c.path(f'hf-{i:03d}.parquet')
        ds.to_parquet(path)
        docs, skipped = parquet_reference(path)
        c.add(f'datasets to_parquet {i}', path, {'docs': docs, 'skipped': skipped})
        path = c.path(f'hf-{i:03d}.jsonl')
        ds.to_json(path, lines=True, force_ascii=rng.random() < 0.5)
        c.add(f'datasets to_json {i}', path, jsonl_reference(path))


# ------------------------------------------------------------------------------------------------
# jsonl

def _no_constants(name):
    raise ValueError(f'{name} is not JSON')


def jsonl_reference(path, field='text'):
    """The documents of a jsonl file, or the error and line a strict reader refuses it at."""
    with open(path, 'rb') as f:
        raw = f.read()
    if raw[:2] == b'\x1f\x8b':
        raw = gzip.decompress(raw)
    lines = raw.split(b'\n')
    if lines and lines[-1] == b'':
        lines.pop()
    docs, skipped = [], 0
    for n, line in enumerate(lines, 1):
        if line.endswith(b'\r'):
            line = line[:-1]
        if n == 1 and line.startswith(BOM):
            line = line[len(BOM):]
        if line.strip(b' \t') == b'':
            continue
        try:
            text_line = line.decode('utf-8')
            bad_utf8 = False
        except UnicodeDecodeError:
            text_line = line.decode('utf-8', errors='replace')
            bad_utf8 = True
        try:
            value = json.loads(text_line, parse_constant=_no_constants)
        except ValueError:
            return {'error': 'ERR_DATASET_INVALID', 'at': f':{n}:'}
        if not isinstance(value, dict) or field not in value:
            return {'error': 'ERR_DATASET_INVALID', 'at': f':{n}:'}
        text = value[field]
        if text is None or text == '':
            continue
        if not isinstance(text, str):
            return {'error': 'ERR_DATASET_INVALID', 'at': f':{n}:'}
        if bad_utf8:
            skipped += 1
            continue
        docs.append(text)
    return {'docs': docs, 'skipped': skipped}


BAD_LINES = [
    b'{"text": "unterminated', b'{"text": "a",}', b"{'text': 'single quotes'}", b'[1, 2]', b'"just a string"',
    b'42', b'null', b'true', b'{"text": 42}', b'{"text": ["a"]}', b'{"text": {"a": 1}}', b'{"text": true}',
    b'{"other": "no text field"}', b'{"text": NaN}', b'{"text": Infinity}', b'{"text": "a"} trailing',
    b'{"text": "a"}{"text": "b"}', b'{"text": "ctrl \x01 char"}', b'{"text": "tab \t raw"}', b'{"text": "\\x41"}',
    b'{"text": "\\u12"}', b'{text: "unquoted"}', b'{"text": "a" "b"}', b'\xc2\xa0', b'\xe3\x80\x80', b'\xe2\x80\xa8',
    b'\x0c', b'\x0b', b'\x00', b'{"text": "a"}\x00', b'\xc2\xa0{"text": "nbsp before"}', b'{"text": 01}',
    b'{"text": .5}', b'{"text": "a"', b'}',
]


def jsonl_line(rng, text, field='text'):
    obj = {'id': rng.randint(0, 1000), field: text} if rng.random() < 0.5 else {field: text}
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode('utf-8', errors='surrogatepass')


def jsonl_cases(c, rng, n_cases, small):
    for i in range(n_cases):
        texts = texts_for(rng, rng.randint(1, 40), 300 if small else 3000)
        lines = [jsonl_line(rng, t) for t in texts]
        # blank lines, CRLF, BOM, a long line, a final line without "\n"
        for _ in range(rng.randint(0, 3)):
            lines.insert(rng.randint(0, len(lines)), rng.choice([b'', b'   ', b'\t', b' \t ']))
        if not small and rng.random() < 0.2:
            lines.insert(rng.randint(0, len(lines)), jsonl_line(rng, 'L' * (1 << 20) + 'é'))
        eol = rng.choice([b'\n', b'\r\n'])
        body = eol.join(lines) + (eol if rng.random() < 0.7 else b'')
        if rng.random() < 0.3:
            body = BOM + body
        bad = None
        if rng.random() < 0.15:
            bad = rng.choice([b'\xff', b'\xc3', b'\xed\xa0\x80', b'\xf4\x90\x80\x80'])
            at = body.find(b'"text": "')
            if at >= 0:
                at += len(b'"text": "')
                body = body[:at] + bad + body[at:]
        gz = rng.random() < 0.35
        name = f'jl-{i:03d}.jsonl' + ('.gz' if gz else '')
        path = c.path(name)
        if gz:
            if rng.random() < 0.3 and len(body) > 2:
                cut = rng.randint(1, len(body) - 1)
                data = gzip.compress(body[:cut]) + gzip.compress(body[cut:])  # multi-member
            else:
                data = gzip.compress(body)
        else:
            data = body
        with open(path, 'wb') as f:
            f.write(data)
        c.add(f'jsonl {i} gz={gz} eol={eol!r} bad={bad!r}', path, jsonl_reference(path))
    for k, bad in enumerate(BAD_LINES):
        before = [jsonl_line(rng, rand_text(rng, 50)) for _ in range(rng.randint(0, 5))]
        body = b'\n'.join(before + [bad, jsonl_line(rng, 'after')]) + b'\n'
        path = c.path(f'jl-bad-{k:02d}.jsonl')
        with open(path, 'wb') as f:
            f.write(body)
        ref = jsonl_reference(path)
        if 'error' not in ref:
            raise SystemExit(f'bad line {bad!r} is accepted by the reference')
        c.add(f'jsonl bad line {bad!r}', path, ref)


# ------------------------------------------------------------------------------------------------
# txt and folders

def txt_reference(path):
    with open(path, 'rb') as f:
        raw = f.read()
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        return [], 1
    return ([text] if text else []), 0


def txt_cases(c, rng, n_cases, small):
    for i in range(n_cases):
        kind = rng.random()
        if kind < 0.15:
            raw = rng.choice([b'\xff\xfe', b'ok \xc3', b'\xed\xa0\x80', b'\x80abc'])
        else:
            raw = rng.choice(EDGE_TEXTS + [rand_text(rng, 400)]).encode('utf-8')
            if rng.random() < 0.2:
                raw = BOM + raw
        path = c.path(f'tx-{i:03d}.txt')
        with open(path, 'wb') as f:
            f.write(raw)
        docs, skipped = txt_reference(path)
        if skipped:
            # the only document is skipped, so the dataset is empty, and says why
            c.add(f'txt {i} not UTF-8', path, {'error': 'ERR_DATASET_EMPTY', 'at': 'not valid UTF-8'})
        elif not docs:
            c.add(f'txt {i} empty', path, {'error': 'ERR_DATASET_EMPTY', 'at': ''})
        else:
            c.add(f'txt {i}', path, {'docs': docs, 'skipped': skipped})


def code_units(s):
    return s.encode('utf-16-be', errors='surrogatepass')


def folder_cases(c, rng, n_cases, small):
    for i in range(n_cases):
        root = c.path(f'dir-{i:03d}')
        os.makedirs(root, exist_ok=True)
        names = []
        for j in range(rng.randint(1, 8)):
            sub = rng.choice(['', 'a', 'b/c', 'Z'])
            base = rng.choice(['doc', 'Doc', 'é', '_x', '10', '9', 'data']) + str(j)
            ext = rng.choice(['.txt', '.jsonl', '.jsonl.gz', '.parquet', '.csv', '.md'])
            names.append((sub, base + ext))
        if rng.random() < 0.3:
            names.append(('', '.hidden.txt'))
        files = []
        for sub, name in names:
            d = os.path.join(root, sub)
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, name)
            texts = [rand_text(rng, 80) for _ in range(rng.randint(1, 4))]
            if name.endswith('.parquet'):
                pq.write_table(pa.table({'text': texts}), path)
            elif name.endswith('.jsonl.gz'):
                with open(path, 'wb') as f:
                    f.write(gzip.compress(b'\n'.join(jsonl_line(rng, t) for t in texts)))
            elif name.endswith('.jsonl'):
                with open(path, 'wb') as f:
                    f.write(b'\n'.join(jsonl_line(rng, t) for t in texts))
            else:
                with open(path, 'w', encoding='utf-8') as f:
                    f.write(texts[0])
            files.append(path)
        docs = []
        rels = []
        for path in files:
            rel = os.path.relpath(path, root)
            if any(part.startswith('.') for part in rel.split(os.sep)):
                continue
            if rel.endswith('.txt'):
                rels.append((rel, 'txt', path))
            elif rel.endswith('.jsonl') or rel.endswith('.jsonl.gz'):
                rels.append((rel, 'jsonl', path))
            elif rel.endswith('.parquet'):
                rels.append((rel, 'parquet', path))
        rels.sort(key=lambda r: code_units(r[0]))
        for rel, fmt, path in rels:
            if fmt == 'txt':
                docs += txt_reference(path)[0]
            elif fmt == 'jsonl':
                docs += jsonl_reference(path)['docs']
            else:
                docs += parquet_reference(path)[0]
        if docs:
            c.add(f'folder {i}', root, {'docs': docs, 'skipped': 0}, {'extensions': ['txt', 'jsonl', 'jsonl.gz', 'parquet']})
    if small:
        return  # a non-UTF-8 file name is not committed to git: test/datasets.test.ts makes one
    # a file whose name is not valid UTF-8, beside a normal one
    root = c.path('dir-bytes-name')
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root.encode(), b'bad-\xff-name.txt'), 'wb') as f:
        f.write('from a non-UTF-8 name'.encode())
    with open(os.path.join(root, 'good.txt'), 'w', encoding='utf-8') as f:
        f.write('from good.txt')
    # "bad-\ufffd-name.txt" sorts before "good.txt"
    c.add('folder with a non-UTF-8 file name', root, {'docs': ['from a non-UTF-8 name', 'from good.txt'], 'skipped': 0})


def main():
    args = sys.argv[1:]
    if not args:
        raise SystemExit(__doc__)
    out = args[0]
    small = '--small' in args
    n = int(args[args.index('--cases') + 1]) if '--cases' in args else (6 if small else 40)
    seed = int(args[args.index('--seed') + 1]) if '--seed' in args else 0
    rng = random.Random(seed)
    shutil.rmtree(os.path.join(out, 'cases'), ignore_errors=True)
    c = Corpus(out)
    parquet_cases(c, rng, n * 2, small)
    datasets_cases(c, rng, max(2, n // 4), small)
    jsonl_cases(c, rng, n * 2, small)
    txt_cases(c, rng, n, small)
    folder_cases(c, rng, max(2, n // 2), small)
    c.write()
    total = sum(len(x['expect'].get('docs', [])) for x in c.cases)
    print(f'{len(c.cases)} cases, {total} reference documents in {out}')


if __name__ == '__main__':
    main()
