<span class="badge {{phase_style(phase)}}" data-phase="{{phase}}">{{phase}}</span>
