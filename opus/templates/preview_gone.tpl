<p class="small text-body-secondary mb-0">The file of this result cannot be read any more.</p>
