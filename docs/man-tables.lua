-- pandoc filter for the man pages (scripts/man.sh): a README table becomes a definition list, one entry per row
-- (term = first cell; definition = the other cells, each prefixed with its column heading), because tbl tables
-- wider than a terminal do not render cleanly with man(1).
local function cell_blocks(cell)
  return cell.contents or cell
end

local function inlines_of(blocks)
  local out = pandoc.List()
  for _, b in ipairs(blocks) do
    if b.content then
      if #out > 0 then out:insert(pandoc.Space()) end
      out:extend(b.content)
    end
  end
  return out
end

function Table(t)
  local heads = {}
  local hrow = t.head and t.head.rows and t.head.rows[1]
  if hrow then
    for i, c in ipairs(hrow.cells) do heads[i] = pandoc.utils.stringify(cell_blocks(c)) end
  end
  local items = pandoc.List()
  for _, body in ipairs(t.bodies) do
    for _, row in ipairs(body.body) do
      local cells = row.cells
      local term = inlines_of(cell_blocks(cells[1]))
      local defs = pandoc.List()
      for i = 2, #cells do
        local inl = inlines_of(cell_blocks(cells[i]))
        if #inl > 0 then
          local para = pandoc.List()
          if heads[i] and heads[i] ~= "" then
            para:insert(pandoc.Emph({pandoc.Str(heads[i] .. ":")}))
            para:insert(pandoc.Space())
          end
          para:extend(inl)
          defs:insert(pandoc.Para(para))
        end
      end
      items:insert({term, {defs}})
    end
  end
  return pandoc.DefinitionList(items)
end
