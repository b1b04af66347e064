    <div class="jdl-row-actions d-flex flex-wrap gap-2 mt-2">
      <button type="button" class="btn btn-outline-secondary btn-sm" data-move="-1">Move up<span class="visually-hidden" data-row-label></span></button>
      <button type="button" class="btn btn-outline-secondary btn-sm" data-move="1">Move down<span class="visually-hidden" data-row-label></span></button>
      <button type="button" class="btn btn-outline-danger btn-sm" data-remove>Remove<span class="visually-hidden" data-row-label></span></button>
    </div>
