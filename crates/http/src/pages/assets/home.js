// The home page is server-rendered and its search is a plain form: this only
// brings the shared header in.
import './common.js';
