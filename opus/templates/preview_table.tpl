% if preview.rows:
<div class="table-responsive preview-table" tabindex="0" aria-label="First rows of {{name}}">
<table class="table table-sm table-striped">
  <thead><tr>
% for cell in preview.rows[0]:
    <th scope="col">{{cell}}</th>
% end
  </tr></thead>
  <tbody>
% for row in preview.rows[1:]:
    <tr>
% for cell in row:
      <td>{{cell}}</td>
% end
    </tr>
% end
  </tbody>
</table>
</div>
% else:
<p class="small text-body-secondary">The file is empty.</p>
% end
% if preview.note and not preview.truncated:
<p class="small">Shown: {{preview.note}}; <a href="{{download}}">download the whole file</a>.</p>
% elif preview.note:
<p class="small">Shown: {{preview.note}}.</p>
% end
% include('preview_more', preview=preview, download=download, page=page, full=full)
