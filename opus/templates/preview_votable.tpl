% if preview.columns:
<div class="table-responsive preview-table" tabindex="0" aria-label="First rows of {{name}}">
<table class="table table-sm table-striped">
  <thead><tr>
% for column, unit in preview.columns:
    <th scope="col">{{column}}
% if unit:
<span class="fw-normal text-body-secondary">({{unit}})</span>
% end
</th>
% end
  </tr></thead>
  <tbody>
% for row in preview.rows:
    <tr>
% for cell in row:
      <td>{{cell}}</td>
% end
    </tr>
% end
  </tbody>
</table>
</div>
% if not preview.rows:
<p class="small text-body-secondary">The table has no rows.</p>
% end
% if preview.note:
<p class="small">Shown: {{preview.note}}{{'' if full else ':'}}
% if not full:
<a href="{{page}}">see more</a>.
% end
</p>
% end
% elif preview.note:
<p class="small text-body-secondary">No preview: {{preview.note}}.</p>
% end
% include('preview_samp', preview=preview, result=result, name=name, page=page)
